resource "aws_security_group" "this" {
  name_prefix = "${var.name}-"
  description = "Inference endpoint ${var.name}: HTTP(S) from allowed_cidr_blocks, SSH only from ssh_cidr_blocks"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  #checkov:skip=CKV_AWS_260:Port 80 serves the ACME HTTP-01 challenge and answers API routes with 403 (or is the API when HTTPS is off, which a precondition allows only for narrow CIDRs or an explicit allow_plaintext_http); the CIDRs are the user's choice.
  for_each = toset(var.allowed_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "HTTP from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_ingress_rule" "https" {
  for_each = var.https.enabled ? toset(var.allowed_cidr_blocks) : toset([])

  security_group_id = aws_security_group.this.id
  description       = "HTTPS from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_cidr_blocks)

  security_group_id = aws_security_group.this.id
  description       = "SSH from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
}

# Out: only what the instance speaks, HTTPS (AWS APIs, container registries, Hugging Face,
# Let's Encrypt, snaps) and HTTP (Ubuntu's package mirrors). DNS to the VPC resolver and
# NTP to the Amazon Time Sync Service are link-local and not filtered by security groups,
# so a compromised container cannot reach anything else, on any other protocol or port.
resource "aws_vpc_security_group_egress_rule" "web" {
  for_each = { https = 443, http = 80 }

  security_group_id = aws_security_group.this.id
  description       = "${upper(each.key)} out: package mirrors, container registries, Hugging Face, ACME, AWS APIs"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
}

resource "aws_eip" "this" {
  count = local.single_instance ? 1 : 0

  domain = "vpc"

  tags = merge(var.tags, { Name = var.name })
}

# A separate association (not aws_eip.instance) so that the address survives a
# replacement: only the association moves to the new instance.
resource "aws_eip_association" "this" {
  count = local.single_instance ? 1 : 0

  allocation_id = aws_eip.this[0].allocation_id
  instance_id   = aws_instance.this[0].id
}
