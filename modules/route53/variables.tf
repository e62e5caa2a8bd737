variable "zone_id" {
  description = "ID of the existing public hosted zone that gets the record. Null: the zone is looked up by zone_name."
  type        = string
  default     = null
}

variable "zone_name" {
  description = "Name of the existing public hosted zone (e.g. example.com), used only when zone_id is null."
  type        = string
  default     = null
}

variable "record_name" {
  description = "Fully qualified name of the A record, e.g. llm.example.com. It must lie inside the zone."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}\\.?$", lower(var.record_name)))
    error_message = "record_name must be a fully qualified domain name such as llm.example.com."
  }
}

variable "ip_addresses" {
  description = "IPv4 addresses the A record points at (the instance's Elastic IP). Empty when alias is given."
  type        = list(string)
  default     = []
  nullable    = false
}

variable "alias" {
  description = "Make the record an alias of this AWS target instead (a load balancer: its DNS name and hosted zone ID), answered with the target's current addresses and only while it is healthy. Null: the record holds ip_addresses."
  type = object({
    name    = string
    zone_id = string
  })
  default = null
}

variable "ttl" {
  description = "TTL of the record in seconds. Short, so that certbot on a replaced instance sees the record quickly."
  type        = number
  default     = 60

  validation {
    condition     = var.ttl >= 0 && var.ttl <= 86400
    error_message = "ttl must be between 0 and 86400 seconds."
  }
}

variable "allow_overwrite" {
  description = "Take over a record of the same name and type that already exists in the zone (UPSERT; destroy then deletes it). False (default): the apply fails when such a record exists."
  type        = bool
  default     = false
}
