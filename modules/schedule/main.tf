# Working hours: EventBridge Scheduler calls EC2 StartInstances and StopInstances on the one
# instance at the given times (a universal target: the EC2 API called directly, nothing to
# deploy), through a role that may do exactly that and nothing else.

locals {
  # start/stop => "cron(...)"; a value already written as cron(...) is taken as it is.
  actions = {
    for action, expression in { start = var.schedule.start, stop = var.schedule.stop } :
    action => "cron(${trimsuffix(trimprefix(trimspace(expression), "cron("), ")")})"
    if expression != null
  }
}

# Schedules take no tags; their group does, and holds them.
resource "aws_scheduler_schedule_group" "this" {
  name = var.name
  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.instance_id != null
      error_message = "schedule needs deployment_mode = \"instance\": it starts and stops the one instance, and the autoscaling mode has none (its group keeps min_size instances running)."
    }
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    # Only this account's schedules of this group may use the role (confused deputy).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${var.partition}:scheduler:${var.region}:${var.account_id}:schedule/${var.name}/*"]
    }
  }
}

data "aws_iam_policy_document" "start_stop" {
  statement {
    sid       = "StartStopThisInstance"
    actions   = ["ec2:StartInstances", "ec2:StopInstances"]
    resources = [var.instance_arn]
  }

  # Starting an instance attaches its encrypted volumes again; with a customer managed key
  # EC2 needs a grant on it, created on behalf of the caller (docs.aws.amazon.com/ebs/latest/
  # userguide/ebs-encryption-requirements.html). The default aws/ebs key needs none.
  dynamic "statement" {
    for_each = var.volume_kms_key_id == null ? [] : [var.volume_kms_key_id]

    content {
      sid       = "GrantForEncryptedVolumes"
      actions   = ["kms:CreateGrant"]
      resources = [statement.value]

      condition {
        test     = "Bool"
        variable = "kms:GrantIsForAWSResource"
        values   = ["true"]
      }
    }
  }
}

resource "aws_iam_role" "this" {
  name_prefix        = "${substr(var.name, 0, 28)}-sch-"
  description        = "EventBridge Scheduler: start and stop the inference instance ${var.instance_id}"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "start-stop-instance"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.start_stop.json
}

resource "aws_scheduler_schedule" "this" {
  #checkov:skip=CKV_AWS_297:The schedule holds only an instance id and a cron expression; EventBridge encrypts it at rest with an AWS owned key, and a customer managed key would add a key, its policy and its cost for no secret.
  for_each = local.actions

  name                         = "${var.name}-${each.key}"
  group_name                   = aws_scheduler_schedule_group.this.name
  description                  = "${title(each.key)} the inference instance ${var.instance_id}"
  schedule_expression          = each.value
  schedule_expression_timezone = var.schedule.timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    # Universal target: EC2 StartInstances / StopInstances with this instance's id.
    arn      = "arn:${var.partition}:scheduler:::aws-sdk:ec2:${each.key}Instances"
    role_arn = aws_iam_role.this.arn
    input    = jsonencode({ InstanceIds = [var.instance_id] })

    # A start or stop that has not happened within the hour is dropped rather than run at
    # the wrong time of day (the default keeps retrying for 24 hours).
    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 10
    }
  }

  # The role's policy must exist before a schedule first runs.
  depends_on = [aws_iam_role_policy.this]
}
