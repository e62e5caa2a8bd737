# Inputs of the Auto Scaling group (deployment_mode = "autoscaling"). What every instance is
# launched with comes from modules/ec2 (`launch`), the one place of the rendered scripts,
# the instance profile and the security defaults; the root module owns every default and
# validation of what a user sets (docs/DEVELOPMENT.md "One source of truth").

variable "name" {
  description = "Name of the Auto Scaling group and prefix of the launch template and scaling policy."
  type        = string
}

variable "launch" {
  description = "What every instance is launched with: modules/ec2's `launch` output (AMI, type, instance profile, security group, key pair, bootstrap, IMDS options, root and model cache volumes, tags)."
  type = object({
    ami_id                    = string
    instance_type             = string
    iam_instance_profile_name = string
    iam_instance_profile_arn  = string
    security_group_id         = string
    key_name                  = string
    user_data                 = string
    ebs_optimized             = bool
    monitoring                = bool
    metadata_options = object({
      http_endpoint               = string
      http_tokens                 = string
      http_put_response_hop_limit = number
      instance_metadata_tags      = string
    })
    root_volume = object({
      volume_type           = string
      volume_size           = number
      encrypted             = bool
      kms_key_id            = string
      delete_on_termination = bool
    })
    data_volume = object({
      device_name = string
      volume_type = string
      volume_size = number
      encrypted   = bool
      kms_key_id  = string
    })
    tags = map(string)
  })
  nullable = false
}

variable "subnet_ids" {
  description = "Subnets the instances run in: the public ones (instances get a public address for their way out), or the private ones behind the NAT gateway."
  type        = list(string)
  nullable    = false
}

variable "associate_public_ip_address" {
  description = "Give instances a public IPv4 address: true in public subnets (their only way to the internet), false behind the NAT gateway. Inbound traffic is the security group's business either way: only the load balancer reaches them."
  type        = bool
  nullable    = false
}

variable "target_group_arn" {
  description = "Target group (modules/load_balancer) the group registers its instances in; its /ready health check is the group's health check."
  type        = string
}

variable "min_size" {
  description = "Fewest instances."
  type        = number
}

variable "max_size" {
  description = "Most instances."
  type        = number
}

variable "desired_capacity" {
  description = "Instances to start with; the scaling policy moves it between min_size and max_size afterwards (and Terraform leaves it alone)."
  type        = number
}

variable "health_check_grace_period" {
  description = "Seconds a new instance may take to boot, download the model and serve /ready before a failing health check replaces it."
  type        = number
}

variable "instance_warmup" {
  description = "Seconds after an instance is healthy before its metrics count for scaling and an instance refresh moves on."
  type        = number
}

variable "min_healthy_percentage" {
  description = "Share of desired capacity that must stay healthy during an instance refresh (rolling update); the refresh launches up to 100 points more (capped at 200 %) before it terminates old instances."
  type        = number
}

variable "scripts_digest" {
  description = "A digest of every file the instances run (modules/scripts_bucket's `manifest_sha256`). It is written into the launch template's user data, so a change of a script or setting is a new launch template version, which the group rolls out (instance refresh): its instances are replaced one by one, never updated in place all at once."
  type        = string
}

variable "spot" {
  description = "Spot capacity: enabled (a mixed-instances policy), the On-Demand base that is never Spot, the instance types to spread Spot requests over (the launch type first), and the highest hourly price (null: the On-Demand price)."
  type = object({
    enabled                 = bool
    on_demand_base_capacity = number
    instance_types          = list(string)
    max_price               = string
  })
  nullable = false
}

variable "scaling" {
  description = "Target tracking: metric \"in_flight_requests\" (the proxy's requests in flight per instance, published by each ready instance as load_metric says; needs load_metric) or \"alb_request_count\" (requests per target per minute, from the load balancer), and the target value."
  type = object({
    metric = string
    target = number
  })
  nullable = false
}

variable "load_metric" {
  description = "The CloudWatch metric each ready instance publishes its requests in flight to (modules/monitoring's `load_metric`, published by its publish-metrics.py); null when nothing publishes it (metrics off), which only scaling metric \"alb_request_count\" accepts."
  type = object({
    namespace  = string
    name       = string
    dimensions = map(string)
  })
}

variable "request_count_label" {
  description = "Resource label of the load balancer's ALBRequestCountPerTarget metric (modules/load_balancer)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags, which also reach the instances and volumes)."
  type        = map(string)
  default     = {}
  nullable    = false
}
