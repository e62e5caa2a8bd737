output "instance_id" {
  description = "ID of the EC2 instance."
  value       = aws_instance.this.id
}

output "instance_arn" {
  description = "ARN of the EC2 instance (what a start/stop schedule may act on)."
  value       = aws_instance.this.arn
}

output "volume_kms_key_id" {
  description = "KMS key of the root and data volumes; null when they use the account's default EBS key (aws/ebs)."
  value       = var.volume_kms_key_id
}

output "public_ip" {
  description = "Elastic IP address of the instance (stable across replacements)."
  value       = aws_eip.this.public_ip
}

output "eip_allocation_id" {
  description = "Allocation ID of the Elastic IP."
  value       = aws_eip.this.allocation_id
}

output "private_ip" {
  description = "Private IPv4 address of the instance."
  value       = aws_instance.this.private_ip
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
  description = "ID of the encrypted EBS volume mounted at /opt/models (model cache)."
  value       = aws_ebs_volume.data.id
}

output "scripts" {
  description = "Rendered instance files, \"scripts/<name>\" => content, for the scripts bucket (and for linting the exact bytes that ship)."
  value       = { for file, content in local.script_contents : "scripts/${file}" => content }
}

output "scripts_sha256" {
  description = "SHA-256 of the rendered scripts concatenated in name order; the bootstrap waits until S3 serves exactly this version."
  value       = local.scripts_sha256
}

output "user_data" {
  description = "The rendered bootstrap passed as user_data (no secrets; well under 2 KB)."
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
