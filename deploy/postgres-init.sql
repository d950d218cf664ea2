-- One database per service (each service owns its store); run once by the postgres
-- image on an empty data volume (docker-entrypoint-initdb.d).
CREATE DATABASE customers;
CREATE DATABASE complaints;
CREATE DATABASE callbacks;
CREATE DATABASE campaigns;
CREATE DATABASE audit;
