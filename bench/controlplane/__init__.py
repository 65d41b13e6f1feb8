"""Control-plane benchmark (issue 13): see bench/controlplane/bench.py.

Kept free of imports: standin.py runs under ./venv-airflow, bench.py under ./venv.
"""
