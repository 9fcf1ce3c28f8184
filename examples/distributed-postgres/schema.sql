-- Customers and their orders are distributed by customer and co-located: a customer's orders
-- live on the same worker as the customer, so joins on the customer stay on one node.
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, region text NOT NULL);
CREATE TABLE orders (
    customer_id bigint NOT NULL,
    id bigint NOT NULL,
    amount numeric(10, 2) NOT NULL,
    currency text NOT NULL,
    PRIMARY KEY (customer_id, id)
);
SELECT create_distributed_table('customers', 'id');
SELECT create_distributed_table('orders', 'customer_id', colocate_with => 'customers');

-- A small table every node holds in full: joins with it never leave a node.
CREATE TABLE currencies (code text PRIMARY KEY, rate numeric NOT NULL);
SELECT create_reference_table('currencies');
INSERT INTO currencies VALUES ('EUR', 1.0), ('USD', 0.9), ('GBP', 1.15);

-- Documents with an embedding, searched by an HNSW index on every shard.
CREATE TABLE documents (id bigint PRIMARY KEY, title text NOT NULL, embedding vector(8) NOT NULL);
SELECT create_distributed_table('documents', 'id');
CREATE INDEX documents_embedding ON documents USING hnsw (embedding vector_l2_ops);
