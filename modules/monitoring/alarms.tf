# The alarms, and where they go: an SNS topic with an email subscription when alarm_email is
# set (confirm the email AWS sends), and EC2's own actions where a machine can repair itself.
# The status-check alarms (recover, reboot) exist in the instance mode only: in the
# autoscaling mode the group's ELB health check replaces an instance that stops answering,
# and the disk alarm reads the group's aggregate. docs/OPERATIONS.md "Alarms" says what each
# means and what to do.

locals {
  # What the publisher (publish-metrics.py) and the agent publish; the dashboard uses them too.
  unhealthy_threshold = 1  # Healthy is 1 or 0
  disk_threshold      = 85 # percent used on any file system of the instance
  error_rate_percent  = 5  # of the API requests answered 5xx over 5 minutes
  error_rate_minimum  = 20 # requests in those 5 minutes before a rate means anything

  alarm_names = [for alarm in concat(aws_cloudwatch_metric_alarm.system_status, aws_cloudwatch_metric_alarm.instance_status,
  aws_cloudwatch_metric_alarm.unhealthy, aws_cloudwatch_metric_alarm.disk, aws_cloudwatch_metric_alarm.server_errors) : alarm.alarm_name]

  notify = local.metrics && var.metrics.alarm_email != null ? [aws_sns_topic.alarms[0].arn] : []
  # EC2 moves an instance to new hardware only when it has no instance store (the g5, g6,
  # g4dn and p4d/p5 types have one): for those the alarm notifies, and a stop and start moves it.
  can_recover = local.status_checks && !try(data.aws_ec2_instance_type.this[0].instance_storage_supported, true)

  status_checks = local.metrics && !local.autoscaling
}

data "aws_ec2_instance_type" "this" {
  count = local.status_checks ? 1 : 0

  instance_type = var.instance_type
}

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key (its key policy does not admit cloudwatch.amazonaws.com); the notices carry alarm names and states, no data of the endpoint.
  count = local.metrics && var.metrics.alarm_email != null ? 1 : 0

  name = "${var.name}-alarms"

  tags = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  count = length(aws_sns_topic.alarms)

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.metrics.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "system_status" {
  count = local.status_checks ? 1 : 0

  alarm_name        = "${var.name}-system-status-check"
  alarm_description = local.can_recover ? "The instance's host failed (EC2 system status check) for 2 minutes: EC2 recovers the instance onto new hardware (same id, address and volumes). docs/OPERATIONS.md, Alarms." : "The instance's host failed (EC2 system status check) for 2 minutes. ${var.instance_type} has an instance store, so EC2 cannot recover it: stop and start it (docs/OPERATIONS.md, Alarms)."
  namespace         = "AWS/EC2"
  metric_name       = "StatusCheckFailed_System"
  dimensions        = { InstanceId = var.instance_id }
  statistic         = "Maximum"
  period            = 60
  # A stopped instance (schedules, idle stop) has no status checks: neither failed nor fine.
  evaluation_periods  = 2
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  alarm_actions       = concat(local.can_recover ? ["arn:${var.partition}:automate:${var.region}:ec2:recover"] : [], local.notify)
  ok_actions          = local.notify

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "instance_status" {
  count = local.status_checks ? 1 : 0

  alarm_name          = "${var.name}-instance-status-check"
  alarm_description   = "The instance's operating system stopped answering (EC2 instance status check) for 3 minutes: EC2 reboots it. docs/OPERATIONS.md, Alarms."
  namespace           = "AWS/EC2"
  metric_name         = "StatusCheckFailed_Instance"
  dimensions          = { InstanceId = var.instance_id }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  alarm_actions       = concat(["arn:${var.partition}:automate:${var.region}:ec2:reboot"], local.notify)
  ok_actions          = local.notify

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "unhealthy" {
  count = local.metrics ? 1 : 0

  alarm_name          = "${var.name}-endpoint-unhealthy"
  alarm_description   = local.autoscaling ? "An instance of the group has not answered /ready through NGINX for ${var.metrics.unhealthy_minutes} minutes (each checks it every minute once it has been ready); the group's ELB health check replaces an instance the load balancer finds unhealthy. docs/OPERATIONS.md, Alarms." : "The endpoint has not answered /ready through NGINX for ${var.metrics.unhealthy_minutes} minutes (the instance checks it every minute once it has been ready). docs/OPERATIONS.md, Alarms."
  namespace           = local.namespace
  metric_name         = "Healthy"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = var.metrics.unhealthy_minutes
  datapoints_to_alarm = var.metrics.unhealthy_minutes
  comparison_operator = "LessThanThreshold"
  threshold           = local.unhealthy_threshold
  # No data: the instance is stopped, or it has not been ready yet since it was made (the
  # status-check alarms, or in the autoscaling mode the ELB health check, cover a dead one).
  treat_missing_data = "notBreaching"
  alarm_actions      = local.notify
  ok_actions         = local.notify

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "disk" {
  count = local.metrics ? 1 : 0

  alarm_name        = "${var.name}-disk-above-${local.disk_threshold}-percent"
  alarm_description = "A file system of ${local.autoscaling ? "an instance of the group" : "the instance"} (root or the model volume) is more than ${local.disk_threshold} % full for 10 minutes. docs/OPERATIONS.md, Alarms."
  namespace         = local.namespace
  metric_name       = "disk_used_percent"
  # The agent's aggregate over every file system of the instance, or of every instance of
  # the group (aggregation_dimensions in instance.tf).
  dimensions          = local.host_dimension
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.disk_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.notify
  ok_actions          = local.notify

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "server_errors" {
  count = local.metrics ? 1 : 0

  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "More than ${local.error_rate_percent} % of the API requests were answered 5xx in two 5-minute periods in a row (with at least ${local.error_rate_minimum} requests each). docs/OPERATIONS.md, Alarms."
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.error_rate_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.notify
  ok_actions          = local.notify

  metric_query {
    id          = "rate"
    expression  = "IF(requests >= ${local.error_rate_minimum}, 100 * errors / requests, 0)"
    label       = "5xx, percent of API requests"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = local.namespace
      metric_name = "Errors5xx"
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = local.namespace
      metric_name = "Requests"
      stat        = "Sum"
      period      = 300
    }
  }

  tags = var.tags
}
