-- Demo schema: two tenants, an application role, a protected table.
-- Idempotent: scripts/demo runs it on every start.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT tenant.create_app_role('app_user', 'app_password');
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'router_svc') THEN
        CREATE ROLE router_svc LOGIN IN ROLE tenant_router;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'acme') THEN
        PERFORM tenant.create_tenant('acme', 'Acme Corp');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'globex') THEN
        PERFORM tenant.create_tenant('globex', 'Globex Inc', max_connections => 20);
    END IF;
    -- Globex's clients (checked by the router: its tenant secret) share
    -- backends per transaction.
    IF (SELECT pool_mode IS DISTINCT FROM 'transaction' FROM tenant.tenants WHERE id = 'globex') THEN
        PERFORM tenant.alter_tenant('globex', pool_mode => 'transaction');
    END IF;
END $$;

-- The key includes the tenant column (tenant.audit() asks for that: a key
-- of its own would let one tenant probe which ids other tenants use).
CREATE TABLE IF NOT EXISTS notes (
    id serial,
    tenant_id text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT tenant.protect('notes');
GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO app_user;
GRANT USAGE ON SEQUENCE notes_id_seq TO app_user;
INSERT INTO notes (tenant_id, body)
SELECT t, t || ' note ' || g FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 3) g
WHERE NOT EXISTS (SELECT 1 FROM notes);
