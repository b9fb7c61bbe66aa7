output "task_role_arn" {
  description = "Role the agent runs as (add it to KMS key policies and to the trust policy of latchkey-* roles in member accounts)."
  value       = aws_iam_role.task.arn
}

output "service_name" {
  value = aws_ecs_service.this.name
}

output "log_group_name" {
  value = aws_cloudwatch_log_group.this.name
}
