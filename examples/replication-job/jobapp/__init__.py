"""A small job service, the system under test of the replication-job example: an HTTP API
that accepts copy jobs (DynamoDB for their state, SQS to hand them over) and a worker that
copies one PostgreSQL database into another with pg_dump | pg_restore."""
