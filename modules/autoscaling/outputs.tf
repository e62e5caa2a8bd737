output "group_name" {
  description = "Name of the Auto Scaling group."
  value       = aws_autoscaling_group.this.name
}

output "group_arn" {
  description = "ARN of the Auto Scaling group."
  value       = aws_autoscaling_group.this.arn
}

output "launch_template_id" {
  description = "ID of the launch template."
  value       = aws_launch_template.this.id
}

output "launch_template_version" {
  description = "Latest version of the launch template (the group runs it; a new one starts an instance refresh)."
  value       = aws_launch_template.this.latest_version
}
