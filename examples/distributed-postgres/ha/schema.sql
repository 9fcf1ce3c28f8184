-- Accounts distributed by id, their transfers co-located with them, a reference table of
-- currencies on every group, and the append (set) workload's table, distributed too.
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
SELECT create_distributed_table('accounts', 'id');
CREATE TABLE transfers (account_id bigint NOT NULL, id bigint NOT NULL, amount int NOT NULL,
                        PRIMARY KEY (account_id, id));
SELECT create_distributed_table('transfers', 'account_id', colocate_with => 'accounts');
CREATE TABLE currencies (code text PRIMARY KEY, name text NOT NULL);
SELECT create_reference_table('currencies');
INSERT INTO currencies VALUES ('EUR', 'euro'), ('USD', 'dollar');
CREATE TABLE shakedown_append (id bigint PRIMARY KEY);
SELECT create_distributed_table('shakedown_append', 'id');
