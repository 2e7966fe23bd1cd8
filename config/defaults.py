"""Where the services are when the environment does not say: read by settings and by
`make run` (config.devserver), which must know them before Django is configured."""

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bulkops"
REDIS_URL = "redis://127.0.0.1:6379/0"
