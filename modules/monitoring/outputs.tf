output "instance_files" {
  description = "Files for the instance, \"scripts/<name>\" => content, which the root uploads with the other scripts: docker-daemon.json, setup-monitoring.sh, and with logs or metrics on the agent's configuration, with metrics the publisher and its timer."
  value       = { for name, content in local.instance_files : "scripts/${name}" => content }

  # Uploaded (and so seen by the instance) only once the log group exists and the instance
  # may write to it: Docker's awslogs driver needs both before a container logs a line.
  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.instance]
}

output "log_group_name" {
  description = "CloudWatch Logs group of the deployment (null without logs): streams <instance id>/vllm, /inference-proxy, /nginx-access, /nginx-error, /user-data, /recovery."
  value       = local.logs ? local.log_group_name : null
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the deployment's metrics (null without metrics)."
  value       = local.metrics ? local.namespace : null
}

output "dashboard_url" {
  description = "Console URL of the deployment's CloudWatch dashboard (null without metrics)."
  value       = local.metrics ? "${local.console}/cloudwatch/home?region=${var.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this[0].dashboard_name}" : null
}

output "logs_url" {
  description = "Console URL of the deployment's log group (null without logs)."
  value       = local.logs ? "${local.console}/cloudwatch/home?region=${var.region}#logsV2:log-groups/log-group/${replace(local.log_group_name, "/", "$252F")}" : null
}

output "alarm_names" {
  description = "Names of the deployment's alarms (empty without metrics). The status-check alarms (EC2 recover and reboot) exist in the instance mode only: in the autoscaling mode the group's ELB health check replaces a broken instance."
  value       = local.alarm_names
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (null without alarm_email)."
  value       = try(aws_sns_topic.alarms[0].arn, null)
}

output "system_status_recovers" {
  description = "Whether the system-status alarm recovers the instance onto new hardware (false for types with an instance store, whose alarm only notifies, and in the autoscaling mode, which has no such alarm)."
  value       = local.can_recover
}

output "load_metric" {
  description = "The autoscaling mode's requests in flight per instance, which publish-metrics.py publishes every minute while the instance answers /ready, and the target tracking policy averages: namespace, name, dimensions. Null in the instance mode and without metrics (nothing publishes it)."
  value       = local.metrics ? local.load_metric : null
}
