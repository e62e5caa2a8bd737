data "aws_route53_zone" "this" {
  count = var.zone_id == null ? 1 : 0

  name         = var.zone_name
  private_zone = false

  lifecycle {
    precondition {
      condition     = var.zone_name != null
      error_message = "Set zone_id or zone_name: the record needs an existing public hosted zone."
    }
  }
}

locals {
  zone_id = var.zone_id != null ? var.zone_id : data.aws_route53_zone.this[0].zone_id
}

resource "aws_route53_record" "this" {
  #checkov:skip=CKV2_AWS_23:The record points at the instance's Elastic IP or the load balancer, passed in from modules/ec2 or modules/load_balancer; checkov cannot follow that across modules.
  zone_id = local.zone_id
  name    = var.record_name
  type    = "A"
  # Either addresses (the single instance's Elastic IP) or an alias (the load balancer).
  ttl     = var.alias == null ? var.ttl : null
  records = var.alias == null ? var.ip_addresses : null

  dynamic "alias" {
    for_each = var.alias == null ? [] : [var.alias]

    content {
      name                   = alias.value.name
      zone_id                = alias.value.zone_id
      evaluate_target_health = true
    }
  }

  # False: an existing record of the same name fails the apply instead of being replaced
  # (and deleted on destroy) without a word.
  allow_overwrite = var.allow_overwrite

  lifecycle {
    precondition {
      condition     = (length(var.ip_addresses) > 0) != (var.alias != null)
      error_message = "Give the record either ip_addresses (at least one) or an alias, not both."
    }
  }
}
