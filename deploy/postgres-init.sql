-- Roles and one database per service, run once by the postgres image on an
-- empty data volume (docker-entrypoint-initdb.d), as its superuser.
--
-- crm_owner owns every database and runs the migrations (`crm migrate`; in
-- docker-compose.yml the one-shot `migrate` container). Each service logs in
-- as a role of its own, crm_<service>: `crm migrate` grants it INSERT and
-- SELECT on the log (events, command_results), which it does not own, so it
-- can neither rewrite the log nor turn off the triggers that guard it, and
-- hands it its own working tables, so it may vacuum what an erasure deleted
-- (deploy/runbook.md, "Database roles"). crm_owner is a member of each
-- service role, to hand those tables over and go on migrating them. A role
-- may connect to its own service's database only.
--
-- The passwords come from the postgres container's environment (psql 15+).
\getenv owner_password CRM_DB_OWNER_PASSWORD
\getenv service_password CRM_DB_SERVICE_PASSWORD

CREATE ROLE crm_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE crm_customers LOGIN PASSWORD :'service_password';
CREATE ROLE crm_complaints LOGIN PASSWORD :'service_password';
CREATE ROLE crm_callbacks LOGIN PASSWORD :'service_password';
CREATE ROLE crm_campaigns LOGIN PASSWORD :'service_password';
CREATE ROLE crm_audit LOGIN PASSWORD :'service_password';
GRANT crm_customers, crm_complaints, crm_callbacks, crm_campaigns, crm_audit TO crm_owner;

CREATE DATABASE customers OWNER crm_owner;
CREATE DATABASE complaints OWNER crm_owner;
CREATE DATABASE callbacks OWNER crm_owner;
CREATE DATABASE campaigns OWNER crm_owner;
CREATE DATABASE audit OWNER crm_owner;

REVOKE ALL ON DATABASE customers, complaints, callbacks, campaigns, audit FROM PUBLIC;
GRANT CONNECT ON DATABASE customers TO crm_customers;
GRANT CONNECT ON DATABASE complaints TO crm_complaints;
GRANT CONNECT ON DATABASE callbacks TO crm_callbacks;
GRANT CONNECT ON DATABASE campaigns TO crm_campaigns;
GRANT CONNECT ON DATABASE audit TO crm_audit;
