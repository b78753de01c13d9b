#!/bin/sh
# mod_fcgid starts this with the FastCGI listening socket on fd 0; exec
# keeps it for etl-api. The configuration (ETL_SECRET, ETL_DB_PATH, ...)
# lives in an env file outside the docroot. Placeholders: @BIN@ (where
# etl-api is installed), @RUN@ (the directory holding etl.env).
ETL_ENV_FILE="${ETL_ENV_FILE:-@RUN@/etl.env}"
export ETL_ENV_FILE
exec "@BIN@/etl-api"
