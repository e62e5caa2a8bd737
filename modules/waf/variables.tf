# Inputs of the web ACL (enable_waf, deployment_mode = "autoscaling"). The root module owns
# every default and validation of what a user sets.

variable "name" {
  description = "Name of the web ACL and prefix of its metrics and log group."
  type        = string
}

variable "load_balancer_arn" {
  description = "ARN of the Application Load Balancer the web ACL protects."
  type        = string
}

variable "rate_limit" {
  description = "Requests one client IP may send in 5 minutes before WAF blocks it (until its rate falls again)."
  type        = number
}

variable "log_retention_days" {
  description = "Days WAF's logs of blocked and counted requests are kept in CloudWatch Logs. Null: no logging."
  type        = number
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}
