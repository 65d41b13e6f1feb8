"""Run by the migration Job after `airflow db migrate`, as the database's owner role.

1. The Celery result backend's tables. Celery makes them itself on first use
   (celery/backends/database/session.py, SessionManager.prepare_models:
   ResultModelBase.metadata.create_all), which needs CREATE on the schema;
   the components' role has none, so the owner makes them here, from
   Celery's own models, and the owner's default privileges give the
   components DML on them. create_all checks first: on an existing database
   it changes nothing, and the components' own create_all then finds every
   table and creates nothing either.
2. The SQL in AIRFLOW_AKS_AFTER_MIGRATE_SQL (components/model/database_roles.py,
   after_migration_sql): grants on tables the migration has just made.
"""

import os

from celery.backends.database.models import ResultModelBase
from sqlalchemy import create_engine, text

SQL_ENV = "AIRFLOW_AKS_AFTER_MIGRATE_SQL"


def main() -> None:
    engine = create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    try:
        ResultModelBase.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(text(os.environ[SQL_ENV]))
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
