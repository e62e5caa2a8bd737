data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Used only when availability_zones is empty, and only the first az_count usable names are taken; set availability_zones to pin the zones.
  count = length(var.availability_zones) == 0 ? 1 : 0
  state = "available"
}

locals {
  candidate_zones = length(var.availability_zones) > 0 ? var.availability_zones : data.aws_availability_zones.available[0].names
  usable_zones = [
    for zone in local.candidate_zones : zone
    if length(var.usable_zones) == 0 || contains(var.usable_zones, zone)
  ]
  availability_zones = slice(local.usable_zones, 0, min(var.az_count, length(local.usable_zones)))
  # Subnets are /24-sized slices of a /16 (newbits scale with the VPC prefix):
  # public subnets take the first indexes, private ones start at 100.
  subnet_newbits = 24 - tonumber(split("/", var.cidr_block)[1])
  private_offset = min(100, pow(2, local.subnet_newbits) / 2)
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:One instance behind one security group; NGINX and the proxy log every request, and flow logs would add a log group, a role and per-GB cost.
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    precondition {
      condition     = length(local.availability_zones) > 0
      error_message = "None of the availability zones ${join(", ", local.candidate_zones)} is usable (usable_zones: ${join(", ", var.usable_zones)}). From the root module these are the zones that offer the instance type: include one of them in availability_zones, or leave availability_zones empty."
    }
    precondition {
      condition     = !var.enable_nat_gateway || var.enable_private_subnets
      error_message = "enable_nat_gateway needs enable_private_subnets = true: a NAT gateway only serves private subnets."
    }
  }
}

# The default security group of a new VPC allows all traffic between its members; take
# every rule away so nothing relies on it by accident.
resource "aws_default_security_group" "this" {
  vpc_id  = aws_vpc.this.id
  ingress = []
  egress  = []

  tags = merge(var.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  count = length(local.availability_zones)

  vpc_id            = aws_vpc.this.id
  availability_zone = local.availability_zones[count.index]
  cidr_block        = cidrsubnet(var.cidr_block, local.subnet_newbits, count.index)
  # The instance gets its public address from an Elastic IP, never from the subnet.
  map_public_ip_on_launch = false

  tags = merge(var.tags, { Name = "${var.name}-public-${local.availability_zones[count.index]}", Tier = "public" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# S3 without a public address: at first boot the instance fetches its scripts before its
# Elastic IP is associated, and a gateway endpoint (free) routes S3 through the VPC instead
# of the internet. ECR image layers come from S3 too, so pulls take the same path.
data "aws_region" "current" {}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = concat([aws_route_table.public.id], aws_route_table.private[*].id)

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

resource "aws_subnet" "private" {
  count = var.enable_private_subnets ? length(local.availability_zones) : 0

  vpc_id            = aws_vpc.this.id
  availability_zone = local.availability_zones[count.index]
  cidr_block        = cidrsubnet(var.cidr_block, local.subnet_newbits, local.private_offset + count.index)

  tags = merge(var.tags, { Name = "${var.name}-private-${local.availability_zones[count.index]}", Tier = "private" })
}

resource "aws_eip" "nat" {
  count  = var.enable_nat_gateway ? 1 : 0
  domain = "vpc"

  tags = merge(var.tags, { Name = "${var.name}-nat" })
}

resource "aws_nat_gateway" "this" {
  count = var.enable_nat_gateway ? 1 : 0

  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id

  tags = merge(var.tags, { Name = var.name })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  count  = var.enable_private_subnets ? 1 : 0
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route" "private_nat" {
  count = var.enable_nat_gateway ? 1 : 0

  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}
