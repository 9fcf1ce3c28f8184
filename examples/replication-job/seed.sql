-- The source database of the example: two related tables, a sequence, an index.
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z'
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    amount numeric(10, 2) NOT NULL,
    note text
);
CREATE INDEX orders_customer ON orders (customer_id);

INSERT INTO customers (name, email)
SELECT 'customer ' || i, 'c' || i || '@example.test' FROM generate_series(1, 1000) AS i;
INSERT INTO orders (customer_id, amount, note)
SELECT 1 + (i % 1000), (i * 7 % 10000) / 100.0, CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END
FROM generate_series(1, 5000) AS i;
