output "api_endpoint" {
  description = "Base URL of the OpenAI-compatible API (append /v1): https://<name>.<domain> with HTTPS, http://<name>.<domain> with DNS only, else http://<Elastic IP>."
  value       = local.api_endpoint
}

output "public_ip" {
  description = "Elastic IP of the instance (stable across instance replacements)."
  value       = module.ec2.public_ip
}

output "instance_id" {
  description = "ID of the EC2 instance."
  value       = module.ec2.instance_id
}

output "ecr_repository_url" {
  description = "URL of the ECR repository for the proxy image."
  value       = module.ecr.repository_url
}

output "image_uri" {
  description = "Proxy image the instance runs (built from app/ or the given image_uri)."
  value       = local.image_uri
}

output "scripts_bucket" {
  description = "Name of the S3 bucket holding the rendered instance scripts."
  value       = module.scripts_bucket.bucket_name
}

output "data_volume_id" {
  description = "ID of the model cache volume (survives instance replacement)."
  value       = module.ec2.data_volume_id
}

output "ssm_session_command" {
  description = "Open a shell on the instance through Session Manager (no SSH, no open port)."
  value       = "aws ssm start-session --region ${var.region} --target ${module.ec2.instance_id}"
}

output "api_key_command" {
  description = "Print the API key(s) the proxy accepts (the instance creates the parameter with a random key at first boot if it does not exist)."
  value       = "aws ssm get-parameter --region ${var.region} --name ${module.ec2.api_keys_parameter_name} --with-decryption --query Parameter.Value --output text"
}

output "api_keys_parameter_name" {
  description = "SSM SecureString parameter holding the API keys (default /<name>-<environment>/api_keys, one per deployment)."
  value       = module.ec2.api_keys_parameter_name
}

output "hf_token_parameter_name" {
  description = "SSM SecureString parameter the instance reads the Hugging Face token from (default /<name>-<environment>/hf_token); put a token there for gated models."
  value       = module.ec2.hf_token_parameter_name
}

output "instance_quota_command" {
  description = "Show the account's On-Demand vCPU quota for the instance type's family in this region (new accounts often have 0 for G and P instances; a launch over it fails with VcpuLimitExceeded)."
  value       = "aws service-quotas list-service-quotas --region ${var.region} --service-code ec2 --query \"Quotas[?contains(QuotaName, 'On-Demand ${local.quota_family}')].{name: QuotaName, code: QuotaCode, vcpus: Value}\" --output table"
}

output "diagnostic_commands" {
  description = "What to run next: follow the boot, check every service, see the in-place updates, tail the logs, try a request."
  value       = local.diagnostic_commands
}

output "dashboard_url" {
  description = "Console URL of the deployment's CloudWatch dashboard: requests, latency, time to first token, tokens/s, health, disk, memory, GPUs, alarms (null with enable_monitoring = false)."
  value       = module.monitoring.dashboard_url
}

output "log_group_name" {
  description = "CloudWatch Logs group of the deployment (null with enable_cloudwatch_logs = false); `aws logs tail <group> --follow` reads it."
  value       = module.monitoring.log_group_name
}

output "logs_url" {
  description = "Console URL of the deployment's log group (null with enable_cloudwatch_logs = false)."
  value       = module.monitoring.logs_url
}

output "alarm_names" {
  description = "The deployment's CloudWatch alarms (docs/OPERATIONS.md, Alarms, says what to do when one fires)."
  value       = module.monitoring.alarm_names
}

output "user_data" {
  description = "The bootstrap the instance runs as user_data (no secrets): EC2 keeps only its hash in state and the console, so this is where to read it."
  value       = module.ec2.user_data
}
