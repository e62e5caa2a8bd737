output "group_name" {
  description = "Name of the schedule group holding the schedules."
  value       = aws_scheduler_schedule_group.this.name
}

output "schedule_arns" {
  description = "ARN of each schedule, by action (start, stop)."
  value       = { for action, schedule in aws_scheduler_schedule.this : action => schedule.arn }
}

output "role_arn" {
  description = "ARN of the role the schedules assume (EC2 start/stop of the one instance)."
  value       = aws_iam_role.this.arn
}
