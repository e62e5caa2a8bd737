locals {
  ssm_parameter_arn_prefix = "arn:${var.partition}:ssm:${var.region}:${var.account_id}:parameter"
  hf_token_parameter_arn   = "${local.ssm_parameter_arn_prefix}${var.hf_token_parameter_name}"
  api_keys_parameter_arn   = "${local.ssm_parameter_arn_prefix}${var.api_keys_parameter_name}"
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
# right to create (never overwrite) the API-keys parameter when it is missing.
data "aws_iam_policy_document" "instance" {
  statement {
    sid       = "ReadScripts"
    actions   = ["s3:GetObject"]
    resources = ["arn:${var.partition}:s3:::${var.scripts_bucket_name}/scripts/*"]
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
    sid       = "CreateApiKeys"
    actions   = ["ssm:PutParameter"]
    resources = [local.api_keys_parameter_arn]
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

# Session Manager (shell access without SSH or open ports).
resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.this.name
  policy_arn = "arn:${var.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "this" {
  name_prefix = "${substr(var.name, 0, 32)}-"
  role        = aws_iam_role.this.name

  tags = var.tags
}
