from crm_shared.migrations import run_env
from service_desk.models import metadata

run_env(metadata)
