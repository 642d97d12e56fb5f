#!/bin/sh
# Give each service's RabbitMQ user its password, after deploy/rabbitmq/definitions.json was
# imported (the file holds the users with an empty password hash: no password login until this
# runs). Run where rabbitmqctl reaches the broker, e.g. `kubectl exec -i rabbitmq-0 -- sh -s < ...`
# with the variables below taken from the secret store:
#   RABBITMQ_LEADS_PASSWORD  RABBITMQ_SALES_PASSWORD  RABBITMQ_SERVICE_DESK_PASSWORD  RABBITMQ_NOTIFY_PASSWORD
# The same password goes into that service's BUS_URL (Secret <service>-secrets):
#   amqp://crm-<service>:<password>@<rabbitmq-host>:5672/crm
# Run it again after every import of definitions.json that was not skipped (an import resets the
# users' password hashes to the file's empty ones; see docs/OPERATIONS.md, "RabbitMQ").
# rabbitmqctl takes the password as an argument: run this where other users cannot list processes.
set -eu
for service in leads sales service-desk notify; do
  var="RABBITMQ_$(printf '%s' "$service" | tr 'a-z-' 'A-Z_')_PASSWORD"
  eval "password=\${$var:-}"
  if [ -z "$password" ]; then
    echo "$var is not set: crm-$service keeps its current password" >&2
    continue
  fi
  rabbitmqctl --quiet change_password "crm-$service" "$password"
  echo "crm-$service: password set" >&2
done
