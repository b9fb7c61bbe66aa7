# Latchkey connector on ECS Fargate. See docs/deploy.md.

data "aws_region" "current" {}
data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  name = "latchkey-${var.connector_id}"

  # The agent's files at /etc/latchkey (read-only): SSM parameters written by the init
  # container latchkey-config, or an EFS file system. Not both (precondition below).
  config_from_ssm  = var.config_parameter_arn != null || var.ca_bundle_parameter_arn != null
  config_on_efs    = var.config_efs_file_system_id != null
  has_config_files = local.config_from_ssm || local.config_on_efs
  config_file = (
    var.config_parameter_arn != null ? "/etc/latchkey/config.json" :
    var.config_efs_config_path != null ? "/etc/latchkey/${var.config_efs_config_path}" : null
  )
  ca_bundle_file = (
    var.ca_bundle_parameter_arn != null ? "/etc/latchkey/ca-bundle.pem" :
    var.config_efs_ca_bundle_path != null ? "/etc/latchkey/${var.config_efs_ca_bundle_path}" : null
  )
  config_parameter_arns = compact([var.config_parameter_arn, var.ca_bundle_parameter_arn])
  # Writes each parameter ECS put into its environment as a file (same script as
  # cloudformation.yaml; test/unit/deploy/ecs-files-metrics.test.ts runs it).
  config_init_script = "const fs=require('node:fs'),path=require('node:path');const dir=process.argv[1];const files=[['LATCHKEY_INIT_CONFIG','config.json',(t)=>{try{return typeof JSON.parse(t)==='object'}catch{return false}}],['LATCHKEY_INIT_CA_BUNDLE','ca-bundle.pem',(t)=>t.includes('-----BEGIN CERTIFICATE-----')]];for(const[name,file,valid]of files){const text=process.env[name];if(text===undefined)continue;if(!valid(text)){console.error(name+': not a valid '+file+' (content not shown)');process.exit(1)}fs.writeFileSync(path.join(dir,file),text,{mode:0o400});console.log('wrote '+path.join(dir,file))}"

  # Variables set here; extra_environment may not name one (precondition below).
  template_variables = [
    "LATCHKEY_CONTROL_PLANE_URL", "LATCHKEY_CONNECTOR_ID", "LATCHKEY_TRUSTED_KEYS",
    "LATCHKEY_SHUTDOWN_GRACE", "LATCHKEY_AWS_REGION", "LATCHKEY_TAG_PREFIX", "LATCHKEY_HTTP_PORT",
    "LATCHKEY_STATE_DIR", "LATCHKEY_HTTPS_PROXY", "NO_PROXY", "LATCHKEY_CONNECTOR_TOKEN",
    "LATCHKEY_CONFIG_FILE", "LATCHKEY_CA_BUNDLE_FILE",
  ]

  metrics_to_amp = var.amp_workspace_arn != null

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
    local.config_file == null ? {} : { LATCHKEY_CONFIG_FILE = local.config_file },
    local.ca_bundle_file == null ? {} : { LATCHKEY_CA_BUNDLE_FILE = local.ca_bundle_file },
    var.extra_environment,
  )

  agent_container = {
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
    mountPoints = concat(
      [{ sourceVolume = "state", containerPath = "/var/lib/latchkey", readOnly = false }],
      local.has_config_files ? [{ sourceVolume = "config", containerPath = "/etc/latchkey", readOnly = true }] : [],
    )
    dependsOn   = local.config_from_ssm ? [{ containerName = "latchkey-config", condition = "SUCCESS" }] : null
    environment = [for k, v in local.environment : { name = k, value = v }]
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
  }

  # Runs once before the agent (which waits for its success). Mounted at /var/lib/latchkey,
  # the image's VOLUME owned by 10001, so that ECS creates the volume owned by 10001.
  config_init_container = {
    name                   = "latchkey-config"
    image                  = var.image
    essential              = false
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    privileged             = false
    linuxParameters        = { capabilities = { drop = ["ALL"] } }
    entryPoint             = ["node"]
    command                = ["-e", local.config_init_script, "/var/lib/latchkey"]
    mountPoints            = [{ sourceVolume = "config", containerPath = "/var/lib/latchkey", readOnly = false }]
    secrets = concat(
      var.config_parameter_arn == null ? [] : [{ name = "LATCHKEY_INIT_CONFIG", valueFrom = var.config_parameter_arn }],
      var.ca_bundle_parameter_arn == null ? [] : [{ name = "LATCHKEY_INIT_CA_BUNDLE", valueFrom = var.ca_bundle_parameter_arn }],
    )
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "latchkey-config"
      }
    }
  }

  # Scrapes the agent inside the task (127.0.0.1, no port opened) and remote-writes to AMP
  # with the task role (SigV4). job = latchkey-<connector_id>; instance = the task's ARN.
  metrics_collector_container = {
    name                   = "metrics-collector"
    image                  = var.metrics_collector_image
    essential              = false
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    privileged             = false
    linuxParameters        = { capabilities = { drop = ["ALL"] } }
    environment = concat(
      [{
        name = "AOT_CONFIG_CONTENT"
        value = local.metrics_to_amp ? templatefile("${path.module}/metrics-collector.yaml.tftpl", {
          connector_id     = var.connector_id
          workspace_region = split(":", var.amp_workspace_arn)[3]
          workspace_id     = split("/", var.amp_workspace_arn)[1]
          url_suffix       = data.aws_partition.current.dns_suffix
        }) : ""
      }],
      var.https_proxy == null ? [] : [{ name = "HTTPS_PROXY", value = var.https_proxy }],
      var.no_proxy == null ? [] : [{ name = "NO_PROXY", value = var.no_proxy }],
    )
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = "metrics-collector"
        mode                  = "non-blocking"
        max-buffer-size       = "4m"
      }
    }
  }
}

resource "terraform_data" "grace_check" {
  lifecycle {
    precondition {
      condition     = var.stop_timeout_seconds > var.shutdown_grace_seconds
      error_message = "stop_timeout_seconds must exceed shutdown_grace_seconds, or ECS kills the agent before it has flushed its results."
    }
    precondition {
      condition     = length(setintersection(keys(var.extra_environment), local.template_variables)) == 0
      error_message = "extra_environment names a variable the module sets itself (use its variable)."
    }
    precondition {
      condition     = !(local.config_from_ssm && local.config_on_efs)
      error_message = "Give the files either as SSM parameters (config_parameter_arn, ca_bundle_parameter_arn) or on EFS (config_efs_file_system_id), not both."
    }
    precondition {
      condition     = local.config_on_efs == (var.config_efs_config_path != null || var.config_efs_ca_bundle_path != null)
      error_message = "config_efs_file_system_id needs config_efs_config_path, config_efs_ca_bundle_path or both, and they need it."
    }
    precondition {
      condition     = var.config_efs_access_point_id == null || local.config_on_efs
      error_message = "config_efs_access_point_id needs config_efs_file_system_id."
    }
    precondition {
      condition     = var.config_parameter_kms_key_arn == null || local.config_from_ssm
      error_message = "config_parameter_kms_key_arn decrypts config_parameter_arn or ca_bundle_parameter_arn; give one."
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

# ECS reads the config parameters for the init container (GetParameters), nothing else.
resource "aws_iam_role_policy" "execution_config" {
  count = local.config_from_ssm ? 1 : 0
  name  = "config-parameters"
  role  = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "ConfigParameters"
        Effect   = "Allow"
        Action   = "ssm:GetParameters"
        Resource = local.config_parameter_arns
      }],
      var.config_parameter_kms_key_arn == null ? [] : [{
        Sid       = "ConfigParametersKey"
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = var.config_parameter_kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "ssm.${data.aws_region.current.name}.${data.aws_partition.current.dns_suffix}" } }
      }],
    )
  })
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

# The metrics sidecar runs with the task role (ECS has one per task): only remote write,
# only to this workspace, in its own policy beside the connector policy.
resource "aws_iam_role_policy" "task_metrics" {
  count = local.metrics_to_amp ? 1 : 0
  name  = "metrics-remote-write"
  role  = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "MetricsRemoteWrite"
      Effect   = "Allow"
      Action   = "aps:RemoteWrite"
      Resource = var.amp_workspace_arn
    }]
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
    cpu_architecture        = var.cpu_architecture
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

  # The agent's files at /etc/latchkey: EFS, or task storage filled by the init container.
  dynamic "volume" {
    for_each = local.has_config_files ? [1] : []
    content {
      name = "config"
      dynamic "efs_volume_configuration" {
        for_each = local.config_on_efs ? [1] : []
        content {
          file_system_id     = var.config_efs_file_system_id
          transit_encryption = "ENABLED"
          dynamic "authorization_config" {
            for_each = var.config_efs_access_point_id == null ? [] : [1]
            content {
              access_point_id = var.config_efs_access_point_id
              iam             = "DISABLED"
            }
          }
        }
      }
    }
  }

  container_definitions = jsonencode(concat(
    local.config_from_ssm ? [local.config_init_container] : [],
    [local.agent_container],
    local.metrics_to_amp ? [local.metrics_collector_container] : [],
  ))
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
