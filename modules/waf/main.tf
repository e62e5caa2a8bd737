locals {
  # The common rule set's body rules are counted, not enforced: prompts are large and
  # routinely hold code, HTML and URLs, which they read as attacks (SizeRestrictions_BODY
  # alone blocks every body over 8 KB). The proxy enforces its own body limit
  # (proxy_max_body_bytes).
  counted_body_rules = ["SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY", "EC2MetaDataSSRF_BODY"]
  metric_prefix      = replace(var.name, "-", "_")
}

# Rules in evaluation order: the per-IP rate limit, then AWS managed rule groups (IP
# reputation, known bad inputs such as Log4j's JNDI lookups, the common rule set).
resource "aws_wafv2_web_acl" "this" {
  name        = var.name
  description = "In front of the inference endpoint ${var.name}: per-IP rate limit and AWS managed rules"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 0

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.rate_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = 300
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.metric_prefix}_rate_limit"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "AWSManagedRulesAmazonIpReputationList"
    priority = 1

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.metric_prefix}_ip_reputation"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "AWSManagedRulesKnownBadInputsRuleSet"
    priority = 2

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.metric_prefix}_known_bad_inputs"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "AWSManagedRulesCommonRuleSet"
    priority = 3

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"

        dynamic "rule_action_override" {
          for_each = local.counted_body_rules

          content {
            name = rule_action_override.value

            action_to_use {
              count {}
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.metric_prefix}_common"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = local.metric_prefix
    sampled_requests_enabled   = true
  }

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = var.load_balancer_arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

# --- logging (optional) ------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:WAF logs hold request metadata (client IPs, headers; the Authorization header is redacted below), encrypted at rest by CloudWatch Logs; a customer KMS key would add a key policy and cost.
  #checkov:skip=CKV_AWS_338:Retention is the user's choice (waf_log_retention_days); a year of WAF logs is rarely worth its cost for an API behind keys.
  count = var.log_retention_days == null ? 0 : 1

  # WAF delivers only to log groups whose name starts with aws-waf-logs-.
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.log_retention_days

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  count = var.log_retention_days == null ? 0 : 1

  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.this[0].arn]

  # API keys travel in this header: never in the logs.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }
}
