-- One database per service (DESIGN.md, "Scale-out"); run once by the postgres
-- image on an empty data volume (docker-entrypoint-initdb.d).
CREATE DATABASE customers;
CREATE DATABASE complaints;
CREATE DATABASE callbacks;
CREATE DATABASE campaigns;
CREATE DATABASE audit;
