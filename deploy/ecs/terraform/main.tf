# Latchkey connector on ECS Fargate. See docs/deploy.md.

data "aws_region" "current" {}
data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  name = "latchkey-${var.connector_id}"
  environment = merge(
    {
      LATCHKEY_CONTROL_PLANE_URL = var.control_plane_url
      LATCHKEY_CONNECTOR_ID      = var.connector_id
      LATCHKEY_TRUSTED_KEYS      = jsonencode(var.trusted_keys)
      LATCHKEY_SHUTDOWN_GRACE    = "${var.shutdown_grace_seconds}s"
      LATCHKEY_AWS_REGION        = data.aws_region.current.name
      LATCHKEY_TAG_PREFIX        = var.tag_prefix
      LATCHKEY_HTTP_PORT         = "8080"
      LATCHKEY_STATE_DIR         = "/var/lib/latchkey"
    },
    var.https_proxy == null ? {} : { LATCHKEY_HTTPS_PROXY = var.https_proxy },
    var.no_proxy == null ? {} : { NO_PROXY = var.no_proxy },
    var.extra_environment,
  )
}

resource "terraform_data" "grace_check" {
  lifecycle {
    precondition {
      condition     = var.stop_timeout_seconds > var.shutdown_grace_seconds
      error_message = "stop_timeout_seconds must exceed shutdown_grace_seconds, or ECS kills the agent before it has flushed its results."
    }
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/latchkey/${var.connector_id}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_security_group" "this" {
  name        = local.name
  description = "Latchkey connector - outbound only"
  vpc_id      = var.vpc_id
  tags        = var.tags

  egress {
    description = "control plane, databases, AWS APIs"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# ECS itself: pull the image, write logs, read the connector token.
resource "aws_iam_role" "execution" {
  name               = "${local.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_token" {
  name = "connector-token"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "ConnectorToken"
      Effect   = "Allow"
      Action   = "secretsmanager:GetSecretValue"
      Resource = var.connector_token_secret_arn
    }]
  })
}

# The agent: the connector policy, one statement per feature. connector-policy.json.tftpl is
# deploy/iam/connector-policy.json with the tag prefix templated into every tag key
# (aws:ResourceTag/<tag_prefix>-protected, ...); test/unit/deploy/policy-coverage.test.ts
# keeps the two identical.
# Named latchkey-* so that the policy's IamGrantsNeverOnConnectorRoles deny protects it.
resource "aws_iam_role" "task" {
  name               = local.name
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task_connector" {
  name = "latchkey-connector"
  role = aws_iam_role.task.id
  policy = templatefile("${path.module}/connector-policy.json.tftpl", {
    tag_prefix         = var.tag_prefix
    partition          = data.aws_partition.current.partition
    secret_name_prefix = var.secret_name_prefix
  })
}

resource "aws_ecs_task_definition" "this" {
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  tags                     = var.tags

  runtime_platform {
    cpu_architecture        = "X86_64"
    operating_system_family = "LINUX"
  }

  # The state directory: task storage by default, EFS when a file system is given.
  volume {
    name = "state"
    dynamic "efs_volume_configuration" {
      for_each = var.state_efs_file_system_id == null ? [] : [1]
      content {
        file_system_id     = var.state_efs_file_system_id
        transit_encryption = "ENABLED"
        dynamic "authorization_config" {
          for_each = var.state_efs_access_point_id == null ? [] : [1]
          content {
            access_point_id = var.state_efs_access_point_id
            iam             = "DISABLED"
          }
        }
      }
    }
  }

  container_definitions = jsonencode([{
    name                   = "latchkey"
    image                  = var.image
    essential              = true
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    privileged             = false
    # ECS sends SIGTERM, waits stopTimeout, then SIGKILL: must exceed the shutdown grace.
    stopTimeout = var.stop_timeout_seconds
    linuxParameters = {
      initProcessEnabled = true
      capabilities       = { drop = ["ALL"] }
    }
    portMappings = [{ containerPort = 8080, protocol = "tcp" }]
    mountPoints  = [{ sourceVolume = "state", containerPath = "/var/lib/latchkey", readOnly = false }]
    environment  = [for k, v in local.environment : { name = k, value = v }]
    secrets = [{
      name      = "LATCHKEY_CONNECTOR_TOKEN"
      valueFrom = var.connector_token_secret_arn
    }]
    healthCheck = {
      command     = ["CMD", "node", "-e", "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 20
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "latchkey"
        mode                  = "non-blocking"
        max-buffer-size       = "4m"
      }
    }
  }])
}

resource "aws_ecs_service" "this" {
  name                   = local.name
  cluster                = var.cluster_arn
  launch_type            = "FARGATE"
  desired_count          = var.desired_count
  task_definition        = aws_ecs_task_definition.this.arn
  enable_execute_command = false
  propagate_tags         = "SERVICE"
  tags                   = var.tags

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = false
  }
}
