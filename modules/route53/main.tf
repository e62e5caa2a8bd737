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
  #checkov:skip=CKV2_AWS_23:The record points at the instance's Elastic IP, passed in from modules/ec2; checkov cannot follow that across modules.
  zone_id = local.zone_id
  name    = var.record_name
  type    = "A"
  ttl     = var.ttl
  records = var.ip_addresses

  # False: an existing record of the same name fails the apply instead of being replaced
  # (and deleted on destroy) without a word.
  allow_overwrite = var.allow_overwrite
}
