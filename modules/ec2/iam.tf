locals {
  # Per deployment by default, so that two deployments in one account never share keys.
  hf_token_parameter_name = coalesce(var.hf_token_parameter_name, "/${var.name}/hf_token")
  api_keys_parameter_name = coalesce(var.api_keys_parameter_name, "/${var.name}/api_keys")

  ssm_parameter_arn_prefix = "arn:${var.partition}:ssm:${var.region}:${var.account_id}:parameter"
  hf_token_parameter_arn   = "${local.ssm_parameter_arn_prefix}${local.hf_token_parameter_name}"
  api_keys_parameter_arn   = "${local.ssm_parameter_arn_prefix}${local.api_keys_parameter_name}"
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# Exactly what the boot needs: the scripts, the proxy image, the two secrets, and the
# right to create (never overwrite) the API-keys parameter when it is missing; plus what
# Session Manager needs (AWS's minimal instance profile for Session Manager: register the
# instance, open the message channels), instead of AmazonSSMManagedInstanceCore, which
# would also allow ssm:GetParameter(s) on every parameter of the account. The explicit Deny
# keeps the two parameters the only ones readable even if a broader policy is attached
# to the role later.
data "aws_iam_policy_document" "instance" {
  statement {
    sid       = "ReadScripts"
    actions   = ["s3:GetObject"]
    resources = ["arn:${var.partition}:s3:::${var.scripts_bucket_name}/scripts/*"]
  }

  # update.sh fetches the changed files with one `aws s3 cp --recursive`, which lists them.
  statement {
    sid       = "ListScripts"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${var.partition}:s3:::${var.scripts_bucket_name}"]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["scripts/*"]
    }
  }

  statement {
    sid       = "EcrAuthorization"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "EcrPull"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "ReadSecrets"
    actions   = ["ssm:GetParameter"]
    resources = [local.hf_token_parameter_arn, local.api_keys_parameter_arn]
  }

  statement {
    sid     = "FindDataVolume"
    actions = ["ec2:DescribeVolumes"]
    # setup-data-volume.sh asks which volume is attached at /dev/sdf and opens it by its
    # id. DescribeVolumes supports no resource-level permissions: "*" is the only valid
    # resource, and it reveals volume metadata only, never data.
    resources = ["*"]
  }

  statement {
    sid       = "CreateApiKeys"
    actions   = ["ssm:PutParameter"]
    resources = [local.api_keys_parameter_arn]
  }

  statement {
    sid       = "SessionManagerRegister"
    actions   = ["ssm:UpdateInstanceInformation"]
    resources = ["arn:${var.partition}:ec2:${var.region}:${var.account_id}:instance/*"]
  }

  statement {
    sid = "SessionManagerChannels"
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    # ssmmessages actions have no resource type: "*" is the only valid resource.
    resources = ["*"]
  }

  statement {
    sid    = "NoOtherParameters"
    effect = "Deny"
    actions = [
      "ssm:GetParameter",
      "ssm:GetParameterHistory",
      "ssm:GetParameters",
      "ssm:GetParametersByPath",
    ]
    not_resources = [local.hf_token_parameter_arn, local.api_keys_parameter_arn]
  }

  statement {
    sid       = "NeverOverwriteApiKeys"
    effect    = "Deny"
    actions   = ["ssm:PutParameter"]
    resources = [local.api_keys_parameter_arn]

    condition {
      test     = "StringEquals"
      variable = "ssm:Overwrite"
      values   = ["true"]
    }
  }

  # model_cache_bucket: read the model's prefix, nothing else of the bucket.
  dynamic "statement" {
    for_each = var.model_cache_bucket == null ? [] : [var.model_cache_bucket]

    content {
      sid       = "ListModelCache"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${var.partition}:s3:::${statement.value}"]

      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${var.vllm.model_id}/*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.model_cache_bucket == null ? [] : [var.model_cache_bucket]

    content {
      sid       = "ReadModelCache"
      actions   = ["s3:GetObject"]
      resources = ["arn:${var.partition}:s3:::${statement.value}/${var.vllm.model_id}/*"]
    }
  }
}

resource "aws_iam_role" "this" {
  name_prefix        = "${substr(var.name, 0, 32)}-"
  description        = "Instance role of the inference endpoint ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "inference-instance"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.instance.json
}

resource "aws_iam_instance_profile" "this" {
  name_prefix = "${substr(var.name, 0, 32)}-"
  role        = aws_iam_role.this.name

  tags = var.tags
}
