output "api_endpoint" {
  description = "Base URL of the OpenAI-compatible API (append /v1): https://<name>.<domain> with HTTPS, http://<name>.<domain> with DNS only, else http://<Elastic IP>."
  value       = local.api_endpoint
}

output "public_ip" {
  description = "Elastic IP of the instance (stable across instance replacements). Null in the autoscaling mode (see load_balancer_dns_name)."
  value       = module.ec2.public_ip
}

output "instance_id" {
  description = "ID of the EC2 instance. Null in the autoscaling mode (see autoscaling_group_name)."
  value       = module.ec2.instance_id
}

output "start_command" {
  description = "Start the instance again after the idle stop, a scheduled stop or `aws ec2 stop-instances` (a Spot instance stopped by an interruption is started by EC2 itself when capacity returns). The endpoint answers once vLLM has loaded the model from the volume (docs/OPERATIONS.md, Starting a stopped endpoint). Null in the autoscaling mode (the group keeps its instances running)."
  value       = local.autoscaling ? null : "aws ec2 start-instances --region ${var.region} --instance-ids ${module.ec2.instance_id}"
}

output "schedule" {
  description = "Working hours: the ARN of each EventBridge schedule (start, stop) and the role they use; null without schedule."
  value = var.schedule == null ? null : {
    schedule_arns = module.schedule[0].schedule_arns
    role_arn      = module.schedule[0].role_arn
  }
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
  description = "ID of the model cache volume (survives instance replacement). Null in the autoscaling mode: each instance has its own."
  value       = module.ec2.data_volume_id
}

output "ssm_session_command" {
  description = "Open a shell on the instance through Session Manager (no SSH, no open port); in the autoscaling mode on the group's first instance in service."
  value       = "aws ssm start-session --region ${var.region} --target ${local.session_target}"
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
  description = "Show the account's vCPU quota for the instance type's family in this region, On-Demand or, with use_spot, Spot (new accounts often have 0 for G and P instances; a launch over it fails with VcpuLimitExceeded or MaxSpotInstanceCountExceeded)."
  value       = "aws service-quotas list-service-quotas --region ${var.region} --service-code ec2 --query \"Quotas[?${var.use_spot ? "contains(QuotaName, 'Spot') && contains(QuotaName, '${local.quota_family}')" : "contains(QuotaName, 'On-Demand ${local.quota_family}')"}].{name: QuotaName, code: QuotaCode, vcpus: Value}\" --output table"
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

output "load_balancer_dns_name" {
  description = "Autoscaling mode: DNS name of the Application Load Balancer (the Route53 alias points at it; point your own DNS there with create_route53_records = false). Null in the instance mode."
  value       = try(module.load_balancer[0].dns_name, null)
}

output "target_group_arn" {
  description = "Autoscaling mode: ARN of the load balancer's target group (its health shows which instances serve: docs/OPERATIONS.md). Null in the instance mode."
  value       = try(module.load_balancer[0].target_group_arn, null)
}

output "autoscaling_group_name" {
  description = "Autoscaling mode: name of the Auto Scaling group (docs/OPERATIONS.md: scale, rolling update, drain). Null in the instance mode."
  value       = try(module.autoscaling[0].group_name, null)
}

output "web_acl_arn" {
  description = "ARN of the WAF web ACL in front of the load balancer, or null without enable_waf."
  value       = try(module.waf[0].web_acl_arn, null)
}
