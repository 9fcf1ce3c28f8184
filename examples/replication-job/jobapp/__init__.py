"""A small job service, the system under test of the replication-job example: two Lambda
handlers behind an HTTP API accept copy jobs and report them (DynamoDB for their state), and a
worker, started per job on an EC2 instance by ``RunInstances``, copies one PostgreSQL database
into another with pg_dump | pg_restore, then terminates its own instance."""
