CREATE TABLE orders (
    id      bigserial PRIMARY KEY,
    item    text NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);
INSERT INTO orders (item) VALUES ('seed-1'), ('seed-2');
