# Operating the deployment from AWS: one log group, the instance's permission to write to
# it and to publish metrics in the deployment's own namespace, alarms (alarms.tf), a
# dashboard (dashboard.tf), and the files the instance needs for its side of it
# (instance.tf: Docker's log driver, the CloudWatch agent's configuration, the metrics
# publisher), which the root uploads with the other instance scripts.

locals {
  log_group_name = "/ec2-inference/${var.name}"
  log_group_arn  = "arn:${var.partition}:logs:${var.region}:${var.account_id}:log-group:${local.log_group_name}"
  # One namespace per deployment, so that the instance policy can name it: an instance of
  # one deployment cannot write another's metrics (and so hide its alarms).
  namespace = "ec2-inference/${var.name}"

  logs    = var.logs.enabled
  metrics = var.metrics.enabled

  # The autoscaling mode (a name known at plan): the host's metrics are read by the group,
  # whose instances come and go, instead of by one instance.
  autoscaling    = var.autoscaling_group_name != null
  host_dimension = local.autoscaling ? { AutoScalingGroupName = var.autoscaling_group_name } : { InstanceId = var.instance_id }

  # The one definition of the metric the autoscaling mode's target tracking policy averages:
  # each instance's requests in flight, published by publish-metrics.py only while the
  # instance answers /ready (a loading instance would pull the average down). The policy
  # reads it from the output load_metric, the publisher from its unit's environment.
  load_metric = local.autoscaling ? {
    namespace  = local.namespace
    name       = "InFlightRequests"
    dimensions = { AutoScalingGroupName = var.autoscaling_group_name }
  } : null
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is log_retention_days (default 30): a year of inference logs would cost far more than the endpoint's operators need.
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest; a customer key is optional (log_kms_key_arn) because its key policy must admit the logs service.
  count = local.logs ? 1 : 0

  name              = local.log_group_name
  retention_in_days = var.logs.retention_days
  kms_key_id        = var.logs.kms_key_arn

  tags = var.tags
}

# What the instance needs for this, nothing more: log streams and events in the
# deployment's log group only (Docker's awslogs driver and the agent create their streams;
# the group is Terraform's, so neither may create or delete groups or change retention), and
# metrics in the deployment's namespace only (PutMetricData has no resource type; the
# namespace condition is what scopes it).
data "aws_iam_policy_document" "instance" {
  count = local.logs || local.metrics ? 1 : 0

  dynamic "statement" {
    for_each = local.logs ? [local.log_group_arn] : []

    content {
      sid       = "WriteDeploymentLogs"
      actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
      resources = [statement.value, "${statement.value}:*"]
    }
  }

  dynamic "statement" {
    for_each = local.metrics ? [local.namespace] : []

    content {
      sid       = "PublishDeploymentMetrics"
      actions   = ["cloudwatch:PutMetricData"]
      resources = ["*"]

      condition {
        test     = "StringEquals"
        variable = "cloudwatch:namespace"
        values   = [statement.value]
      }
    }
  }

  # The autoscaling mode: the agent resolves ${aws:AutoScalingGroupName} from the instance's
  # aws:autoscaling:groupName tag with DescribeTags (instance metadata tags are off), an
  # action without resource types.
  dynamic "statement" {
    for_each = local.metrics && local.autoscaling ? ["*"] : []

    content {
      sid       = "ReadInstanceTags"
      actions   = ["ec2:DescribeTags"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "instance" {
  count = local.logs || local.metrics ? 1 : 0

  name   = "inference-monitoring"
  role   = var.instance_role_name
  policy = data.aws_iam_policy_document.instance[0].json
}
