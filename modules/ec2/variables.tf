# Inputs of the instance module. The root module is its caller and owns the default and the
# validation of every value a user sets (see docs/DEVELOPMENT.md "One source of truth"), so
# those arrive here as required, typed inputs and are trusted as they are. Only the knobs
# that exist here alone (tags, ami_ssm_parameter, volume_kms_key_id, watchdog_interval)
# carry a default (and, where the value is constrained, a validation) in this file.

# --- identity and placement -------------------------------------------------------------

variable "name" {
  description = "Name prefix of every resource of the instance (role, security group, volume, instance)."
  type        = string
}

variable "region" {
  description = "AWS region the instance runs in (the scripts call S3, SSM and ECR there)."
  type        = string
}

variable "account_id" {
  description = "AWS account ID, used to build the SSM parameter ARNs of the instance policy."
  type        = string
}

variable "partition" {
  description = "AWS partition of the ARNs (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "vpc_id" {
  description = "ID of the VPC that holds the security group."
  type        = string
}

variable "subnet_id" {
  description = "ID of the public subnet the instance runs in."
  type        = string
}

variable "vpc_cidr_block" {
  description = "IPv4 CIDR block of the VPC: behind the load balancer (autoscaling mode), NGINX trusts X-Forwarded-For from addresses in it."
  type        = string
}

variable "availability_zone" {
  description = "Availability zone of subnet_id; the data volume must live in the same zone."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource of this module (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
  nullable    = false
}

# --- instance -----------------------------------------------------------------------------

variable "enable_waf" {
  description = "A WAF web ACL was asked for. Only the autoscaling mode has the load balancer it attaches to: true is refused in the instance mode (the module creates no WAF itself)."
  type        = bool
  nullable    = false
}

variable "deployment_mode" {
  description = "How instances are run: \"instance\" creates the single instance here (with its Elastic IP and model cache volume); \"autoscaling\" creates none, and modules/autoscaling launches them from the `launch` output."
  type        = string
  nullable    = false
}

variable "instance_type" {
  description = "EC2 instance type, e.g. g5.xlarge (GPU) or c7i.2xlarge (CPU)."
  type        = string
}

variable "architecture" {
  description = "CPU architecture of instance_type as EC2 names it: x86_64, or arm64 for Graviton types. Picks the Ubuntu AMI (CPU) and the default vLLM CPU image."
  type        = string
  nullable    = false
}

variable "use_gpu" {
  description = "Run vLLM on the instance's NVIDIA GPUs (--gpus all, DLAMI by default). False: the CPU build of vLLM."
  type        = bool
  nullable    = false
}

variable "ami_id" {
  description = "Explicit AMI ID. Null: looked up from ami_ssm_parameter (Deep Learning Base OSS NVIDIA AMI for GPU, Ubuntu 22.04 for CPU). Setting it keeps the plan free of lookups."
  type        = string
}

variable "ami_ssm_parameter" {
  description = "SSM public parameter that names the AMI when ami_id is null. Null: the DLAMI (GPU) or Canonical Ubuntu 22.04 (CPU) parameter."
  type        = string
  default     = null
}

variable "root_volume_size" {
  description = "Root volume size in GiB (OS, Docker images: the vLLM image alone is ~10 GiB)."
  type        = number
  nullable    = false
}

variable "data_volume_size" {
  description = "Size in GiB of the model cache volume mounted at /opt/models. It is a separate encrypted EBS volume that survives instance replacement."
  type        = number
  nullable    = false
}

variable "volume_kms_key_id" {
  description = "ARN of a KMS key for the root and data volumes. Null: the account's default EBS key (volumes are encrypted either way)."
  type        = string
  default     = null
}

variable "key_name" {
  description = "EC2 key pair for SSH. Null: no key; use Session Manager."
  type        = string
}

variable "allow_plaintext_http" {
  description = "Serve the API over plain HTTP although allowed_cidr_blocks is wide open (a block shorter than /16, e.g. 0.0.0.0/0) and HTTPS is off. False: that combination is refused at plan time."
  type        = bool
  nullable    = false
}

variable "allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to reach ports 80 and 443. Let's Encrypt's HTTP-01 challenge needs port 80 from the internet when HTTPS is on."
  type        = list(string)
  nullable    = false
}

variable "ssh_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to reach port 22. Empty: port 22 stays closed."
  type        = list(string)
  nullable    = false
}

variable "use_spot" {
  description = "Run on Spot capacity, and render the timer that logs the 2-minute interruption notice and drains the proxy. The single instance (instance mode) is a persistent Spot request whose interruption behaviour is stop (the instance id, the Elastic IP and the data volume survive; EC2 starts the instance again when capacity returns); the autoscaling mode's Spot is modules/autoscaling's mixed-instances policy."
  type        = bool
  nullable    = false
}

variable "spot_max_price" {
  description = "Highest hourly Spot price in USD (a string such as \"0.60\"). Null: up to the On-Demand price."
  type        = string
}

variable "idle_stop_minutes" {
  description = "Minutes without an API request after which the single instance stops itself (a timer reads the proxy's metrics; the shutdown behaviour is stop). Refused in the autoscaling mode, whose group would replace a stopped instance. Null: never."
  type        = number
}

variable "instance_version" {
  description = "Bump to replace the instance: the volume attachment and Elastic IP association are replaced delete-first (the old instance is stopped and detached), the new instance is launched and gets both, the old one is terminated. Script changes alone never replace it."
  type        = number
  nullable    = false
}

# --- what runs on it ----------------------------------------------------------------------

variable "scripts_bucket_name" {
  description = "Name of the bucket the scripts are uploaded to (the bootstrap fetches scripts/* from it)."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ARN of the ECR repository the instance may pull the proxy image from."
  type        = string
}

variable "proxy_image_uri" {
  description = "Full URI of the proxy image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/llm:3f2a... May be unknown at plan time (built during apply)."
  type        = string
}

variable "vllm" {
  description = "vLLM server: image (pinned tag or digest; null: the release in vllm.version, GPU or CPU build for the architecture), model, context length, GPU memory share, tensor parallel size (GPUs per model), extra arguments, and how long the first start may take (download + load)."
  type = object({
    image                  = string
    model_id               = string
    max_model_len          = number
    gpu_memory_utilization = number
    tensor_parallel_size   = number
    extra_args             = list(string)
    startup_timeout        = number
  })
  nullable = false
}

variable "proxy" {
  description = "Inference proxy: listen port (loopback, behind NGINX), timeouts in seconds (default for ordinary requests, max for long generations), in-flight limit and body size limit."
  type = object({
    port            = number
    default_timeout = number
    max_timeout     = number
    max_concurrency = number
    max_body_bytes  = number
  })
  nullable = false
}

variable "https" {
  description = "TLS with a Let's Encrypt certificate for domain_name (the record must point at the Elastic IP; the boot waits for it), the ACME account email and directory URL."
  type = object({
    enabled     = bool
    domain_name = string
    acme_email  = string
    acme_server = string
  })
  nullable = false
}

variable "model_cache_bucket" {
  description = "S3 bucket (in the deployment's region) that holds the model under <model id>/, synced to the model volume before vLLM starts; the instance role may read that prefix. Null: vLLM downloads from Hugging Face."
  type        = string
}

variable "hf_token_parameter_name" {
  description = "Name of the SSM SecureString parameter holding the Hugging Face token (read at boot; may be absent for public models). Null: /<name>/hf_token, one per deployment."
  type        = string
}

variable "api_keys_parameter_name" {
  description = "Name of the SSM SecureString parameter holding the proxy's API keys (a JSON key set or a comma list), refreshed on the instance every minute. Created with a random key at first boot when missing. Null: /<name>/api_keys, one per deployment."
  type        = string
}

variable "watchdog_interval" {
  description = "How often the health watchdog checks vLLM, the proxy and NGINX (systemd time span, e.g. 2min)."
  type        = string
  default     = "2min"

  validation {
    condition     = can(regex("^[0-9]+(s|min|h)$", var.watchdog_interval))
    error_message = "watchdog_interval must be a systemd time span such as 30s, 2min or 1h."
  }
}
