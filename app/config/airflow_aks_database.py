"""Connect args of the async metadata engine, named by `[database] sql_alchemy_connect_args_async`
when PgBouncer is on.

Airflow puts $AIRFLOW_HOME/config on sys.path, and the image copies this file
there. The async URL is postgresql+psycopg_async (components/kubernetes/secrets.py).
"""

# psycopg 3 turns a query run 5 times on one connection into a named
# server-side prepared statement. In transaction mode PgBouncer may run the
# next transaction on another server connection, which lacks that statement;
# PgBouncer follows them only from 1.21 with max_prepared_statements > 0, and
# that defaults to 0 before 1.24 (the image's PgBouncer is 1.23). None: never
# prepare; each query is parsed, bound and run at once as the unnamed
# statement, on whichever server connection its transaction has.
CONNECT_ARGS_ASYNC = {"prepare_threshold": None}
