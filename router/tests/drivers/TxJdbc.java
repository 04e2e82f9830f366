// Server-side prepared statements in transaction pooling, pgjdbc
// (prepareThreshold=1: a named statement from the first execution).
// usage: java -cp postgresql.jar:. TxJdbc HOST PORT USER_A USER_B PASSWORD DBNAME
// Two clients of two tenants on a pool of one backend; prints one line the
// Rust test (router/tests/tx_drivers.rs) checks.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.Properties;
import java.util.TreeSet;

public class TxJdbc {
    static Connection connect(String[] args, String user) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/" + args[5];
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", args[4]);
        p.setProperty("sslmode", "disable");
        p.setProperty("prepareThreshold", "1");
        return DriverManager.getConnection(url, p);
    }

    public static void main(String[] args) throws Exception {
        String sql = "SELECT tenant.current_tenant_id(), count(*) FROM notes WHERE body LIKE ?";
        try (Connection a = connect(args, args[2]); Connection b = connect(args, args[3])) {
            PreparedStatement pa = a.prepareStatement(sql);
            PreparedStatement pb = b.prepareStatement(sql);
            TreeSet<String> seen = new TreeSet<>();
            for (int i = 0; i < 20; i++) {
                for (PreparedStatement ps : new PreparedStatement[] {pa, pb}) {
                    ps.setString(1, "%");
                    try (ResultSet r = ps.executeQuery()) {
                        r.next();
                        seen.add(r.getString(1) + "=" + r.getLong(2));
                    }
                }
            }
            System.out.println("prepared " + String.join(" ", seen));
        }
    }
}
