variable "name" {
  description = "Name prefix for every resource of the network (VPC, subnets, gateways)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}$", var.name))
    error_message = "name must start with a lowercase letter and contain only lowercase letters, digits and hyphens (at most 39 characters)."
  }
}

variable "cidr_block" {
  description = "IPv4 CIDR block of the VPC; public and private subnets are carved from it (/24 each for a /16, proportionally smaller for longer prefixes)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && try(tonumber(split("/", var.cidr_block)[1]) <= 20, false)
    error_message = "cidr_block must be a valid IPv4 CIDR block with a prefix length of /20 or shorter (room for 6 public and 6 private /24 subnets), e.g. 10.0.0.0/16."
  }
}

variable "availability_zones" {
  description = "Availability zones for the subnets, in order of preference (the first az_count usable ones are taken). Empty: the region's available zones are looked up."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "usable_zones" {
  description = "Zones the subnets may use, e.g. those that offer the instance type (aws_ec2_instance_type_offerings). Zones of availability_zones (or of the lookup) outside this list are skipped. Empty: no restriction."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "az_count" {
  description = "How many availability zones get a public (and, when enabled, a private) subnet: the first az_count usable ones."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 1 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number between 1 and 6."
  }
}

variable "enable_private_subnets" {
  description = "Create private subnets (one per zone) next to the public ones. The instance itself always runs in a public subnet behind its security group."
  type        = bool
  default     = false
}

variable "enable_nat_gateway" {
  description = "Create one NAT gateway (in the first public subnet) for the private subnets. Needs enable_private_subnets; costs money per hour."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
