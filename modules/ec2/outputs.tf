output "instance_id" {
  description = "ID of the EC2 instance; null in the autoscaling mode (the group launches them)."
  value       = try(aws_instance.this[0].id, null)
}

output "instance_arn" {
  description = "ARN of the EC2 instance (what a start/stop schedule may act on); null in the autoscaling mode."
  value       = try(aws_instance.this[0].arn, null)
}

output "volume_kms_key_id" {
  description = "KMS key of the root and data volumes; null when they use the account's default EBS key (aws/ebs)."
  value       = var.volume_kms_key_id
}

output "public_ip" {
  description = "Elastic IP address of the instance (stable across replacements); null in the autoscaling mode."
  value       = try(aws_eip.this[0].public_ip, null)
}

output "eip_allocation_id" {
  description = "Allocation ID of the Elastic IP; null in the autoscaling mode."
  value       = try(aws_eip.this[0].allocation_id, null)
}

output "private_ip" {
  description = "Private IPv4 address of the instance; null in the autoscaling mode."
  value       = try(aws_instance.this[0].private_ip, null)
}

output "ami_id" {
  description = "AMI the instance was launched from (explicit ami_id or the SSM lookup)."
  value       = local.ami_id
}

output "security_group_id" {
  description = "ID of the instance's security group."
  value       = aws_security_group.this.id
}

output "iam_role_name" {
  description = "Name of the instance role."
  value       = aws_iam_role.this.name
}

output "iam_role_arn" {
  description = "ARN of the instance role."
  value       = aws_iam_role.this.arn
}

output "data_volume_id" {
  description = "ID of the encrypted EBS volume mounted at /opt/models (model cache); null in the autoscaling mode (each instance has its own, from the launch template)."
  value       = try(aws_ebs_volume.data[0].id, null)
}

output "scripts" {
  description = "Rendered instance files, \"scripts/<name>\" => content, for the scripts bucket (and for linting the exact bytes that ship)."
  value       = { for file, content in local.script_contents : "scripts/${file}" => content }
}

output "user_data" {
  description = "The rendered bootstrap passed as user_data (no secrets, no script or setting: it changes only with instance_version, the bucket or the region; well under 2 KB)."
  value       = local.user_data
}

output "hf_token_parameter_name" {
  description = "Name of the SSM parameter the instance reads the Hugging Face token from."
  value       = local.hf_token_parameter_name
}

output "api_keys_parameter_name" {
  description = "Name of the SSM parameter holding the API keys (created at first boot when missing)."
  value       = local.api_keys_parameter_name
}

output "hf_token_parameter_arn" {
  description = "ARN of the SSM parameter the instance reads the Hugging Face token from."
  value       = local.hf_token_parameter_arn
}

output "api_keys_parameter_arn" {
  description = "ARN of the SSM parameter holding the API keys (created at first boot when missing)."
  value       = local.api_keys_parameter_arn
}

output "load_balancer_timeouts" {
  description = "Idle timeout and deregistration delay of the autoscaling mode's load balancer, in seconds, derived from max_proxy_timeout with the same margin NGINX adds."
  value       = local.load_balancer_timeouts

  precondition {
    condition     = local.single_instance || local.load_balancer_timeouts.deregistration_delay <= 3600
    error_message = "max_proxy_timeout (${var.proxy.max_timeout}) is too long for deployment_mode = \"autoscaling\": a load balancer's deregistration delay, which must cover the longest request (max_proxy_timeout + ${2 * local.nginx_timeout_margin} s), is at most 3600 s. Use max_proxy_timeout <= ${3600 - 2 * local.nginx_timeout_margin}."
  }
}

output "launch" {
  description = "What every instance of the deployment is launched with, whichever mode launches it: AMI, type, instance profile, security group, key pair, the bootstrap, and the security defaults (IMDSv2 with hop limit 1, encrypted gp3 root and model cache volumes). The autoscaling mode builds its launch template from it; the single instance uses the same values."
  value = {
    ami_id                    = local.ami_id
    instance_type             = var.instance_type
    iam_instance_profile_name = aws_iam_instance_profile.this.name
    iam_instance_profile_arn  = aws_iam_instance_profile.this.arn
    security_group_id         = aws_security_group.this.id
    key_name                  = var.key_name
    user_data                 = local.user_data
    ebs_optimized             = true
    monitoring                = true
    metadata_options          = local.metadata_options
    root_volume               = local.root_volume
    data_volume               = local.data_volume
    tags                      = merge(var.tags, { Name = var.name })
  }

  # What must hold for any instance of this deployment. Here rather than on the instance,
  # so that both modes check it (the single instance exists only in the instance mode).
  precondition {
    condition     = !(var.use_gpu && var.architecture == "arm64")
    error_message = "GPU instances must be x86_64: ${var.instance_type} is a Graviton (arm64) type, and the vLLM GPU image and the Deep Learning AMI used here are x86_64 only. Pick an x86_64 GPU type such as g5.xlarge, or use_gpu = false."
  }
  precondition {
    condition     = var.proxy.max_timeout >= var.proxy.default_timeout
    error_message = "max_proxy_timeout must be greater than or equal to default_proxy_timeout."
  }
  precondition {
    condition     = var.use_gpu || var.vllm.tensor_parallel_size == 1
    error_message = "tensor_parallel_size must be 1 without a GPU (use_gpu = false)."
  }
  precondition {
    condition     = local.gpu_count == null || var.vllm.tensor_parallel_size <= coalesce(local.gpu_count, 0)
    error_message = "tensor_parallel_size (${var.vllm.tensor_parallel_size}) exceeds the ${coalesce(local.gpu_count, 0)} GPU(s) of ${var.instance_type}."
  }
  precondition {
    condition     = length(local.user_data) <= 16384
    error_message = "The rendered bootstrap user_data exceeds EC2's 16 KB limit."
  }
  precondition {
    condition     = var.use_spot || var.spot_max_price == null
    error_message = "spot_max_price is set but use_spot is false: set use_spot = true to run on Spot capacity, or spot_max_price = null."
  }
  precondition {
    condition     = local.single_instance || var.idle_stop_minutes == null
    error_message = "idle_stop_minutes needs deployment_mode = \"instance\": an Auto Scaling group replaces an instance that stops itself. In the autoscaling mode, lower min_size and desired_capacity instead."
  }
}
