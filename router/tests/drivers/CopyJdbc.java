// COPY FROM STDIN through tenant-router with pgjdbc's CopyManager (CSV).
// usage: java -cp postgresql.jar:. CopyJdbc HOST PORT USER PASSWORD DBNAME
// Prints one line per step; the Rust test (router/tests/copy.rs) checks them.
import java.io.StringReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class CopyJdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[4];
        Properties p = new Properties();
        p.setProperty("user", args[2]);
        p.setProperty("password", args[3]);
        p.setProperty("sslmode", "disable");
        try (Connection c = DriverManager.getConnection(url, p)) {
            CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
            StringBuilder csv = new StringBuilder();
            for (int i = 0; i < 1000; i++) csv.append("jdbc-").append(i).append(',').append(i).append('\n');
            long n = copy.copyIn("COPY cp_load (sku, qty) FROM STDIN (FORMAT csv)", new StringReader(csv.toString()));
            System.out.println("csv " + n);
            String tenant;
            try (ResultSet r = c.createStatement().executeQuery("SELECT tenant.current_tenant_id()")) {
                r.next();
                tenant = r.getString(1);
            }
            try {
                copy.copyIn("COPY cp_load (tenant_id, sku, qty) FROM STDIN (FORMAT csv)",
                        new StringReader(tenant + ",jdbc-ok,1\nacme,jdbc-evil,2\n"));
                System.out.println("foreign accepted");
            } catch (SQLException e) {
                System.out.println("foreign refused " + e.getSQLState());
            }
            try (ResultSet r = c.createStatement().executeQuery("SELECT count(*) FROM cp_load")) {
                r.next();
                System.out.println("visible " + r.getLong(1));
            }
        }
    }
}
