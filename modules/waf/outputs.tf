output "web_acl_arn" {
  description = "ARN of the web ACL."
  value       = aws_wafv2_web_acl.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of WAF's logs, or null without logging."
  value       = try(aws_cloudwatch_log_group.this[0].name, null)
}
