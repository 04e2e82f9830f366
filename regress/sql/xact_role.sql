-- tenant.lock_role_for_transaction (0.8.0): a superuser's transaction
-- locked to a less privileged role, as the migration runner runs a
-- tenant's script. Nothing in the transaction can change the role back;
-- the lock ends with the transaction.
CREATE ROLE regress_xact_plain NOLOGIN;
CREATE ROLE regress_xact_super SUPERUSER NOLOGIN;
-- Refused outside a transaction block, for a superuser target, an unknown
-- role, inside a savepoint, and for a non-superuser caller.
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_super');
ROLLBACK;
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_nobody');
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_xact_plain;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
ROLLBACK;
-- Locked: every way back to the superuser is refused, in SQL and in a
-- function.
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
SELECT current_user, session_user;
RESET ROLE;
ROLLBACK;
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
SET SESSION AUTHORIZATION postgres;
ROLLBACK;
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
DO $$ BEGIN PERFORM pg_catalog.set_config('role', 'none', true); END $$;
ROLLBACK;
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
ROLLBACK;
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
SELECT pg_catalog.set_config('session_authorization', NULL, true);
ROLLBACK;
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
SELECT pg_catalog.set_config('role', NULL, true);
ROLLBACK;
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
CREATE TEMP TABLE regress_xact_tmp (a int);
ROLLBACK;
-- An error inside a savepoint keeps the lock.
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
SAVEPOINT s;
SELECT 1/0;
ROLLBACK TO SAVEPOINT s;
SELECT current_user;
RESET ROLE;
ROLLBACK;
-- Control: after the transaction (committed or not) the role is the
-- superuser's again and may change freely.
BEGIN;
SELECT tenant.lock_role_for_transaction('regress_xact_plain');
SELECT current_user;
COMMIT;
SELECT current_user;
SET ROLE regress_xact_plain;
RESET ROLE;
SELECT current_user;
DROP ROLE regress_xact_plain, regress_xact_super;
