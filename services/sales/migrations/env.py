from crm_shared.migrations import run_env
from sales.models import metadata

run_env(metadata)
