"""airflow-aks: Apache Airflow 3 with the CeleryExecutor on AKS, sized from stack config."""

import pulumi

from components.config import read_stack_config

stack_config = read_stack_config()

pulumi.export("capacityPlan", stack_config.plan.to_output())
pulumi.export("capacitySummary", stack_config.plan.summary())
