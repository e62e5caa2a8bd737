# Inputs of the load balancer (deployment_mode = "autoscaling"). The root module owns every
# default and validation of what a user sets (docs/DEVELOPMENT.md "One source of truth");
# the timeouts arrive derived from the proxy's budgets by modules/ec2.

variable "name" {
  description = "Name prefix of every resource (the load balancer's own name is at most 32 characters)."
  type        = string
}

variable "vpc_id" {
  description = "ID of the VPC of the load balancer, its target group and security group."
  type        = string
}

variable "subnet_ids" {
  description = "Public subnets the load balancer listens in (at least two, in different availability zones)."
  type        = list(string)
  nullable    = false
}

variable "allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks that may reach ports 443 and 80 of the load balancer."
  type        = list(string)
  nullable    = false
}

variable "instance_security_group_id" {
  description = "Security group of the instances (modules/ec2): it gets the one rule that lets the load balancer reach NGINX on port 80."
  type        = string
}

variable "hostname" {
  description = "Fully qualified name the endpoint is served as (the certificate's domain). Null is refused: the autoscaling mode serves HTTPS only."
  type        = string
}

variable "zone_id" {
  description = "ID of the public Route53 hosted zone that holds hostname; the certificate is validated through DNS records there."
  type        = string
}

variable "idle_timeout" {
  description = "Seconds a connection may stay silent (the longest request, before its first byte, plus NGINX's and the proxy's margins), from modules/ec2."
  type        = number
}

variable "deregistration_delay" {
  description = "Seconds a deregistering instance keeps serving the requests it has (scale-in, instance refresh), from modules/ec2."
  type        = number
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
