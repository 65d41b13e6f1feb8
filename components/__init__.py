"""airflow-aks: Apache Airflow 3 with the CeleryExecutor on AKS, sized from stack config."""

# This program's release (CHANGELOG.md). A stack exports it, so a later
# release knows which one deployed it.
__version__ = "0.9.0"
