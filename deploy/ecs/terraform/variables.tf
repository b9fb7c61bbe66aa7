variable "image" {
  description = "Container image of the connector (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/latchkey:0.1.0)."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of an existing ECS cluster."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the connector."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets with a route to the control plane (NAT or proxy) and to your databases."
  type        = list(string)
}

variable "control_plane_url" {
  description = "wss:// URL of the control plane."
  type        = string
  validation {
    condition     = startswith(var.control_plane_url, "wss://")
    error_message = "control_plane_url must start with wss://."
  }
}

variable "connector_id" {
  description = "Connector id; also names the task family, service and task role latchkey-<id>."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,50}$", var.connector_id))
    error_message = "connector_id: 1-50 of letters, digits, '_' or '-' (ECS task family and service names allow no '.' or ':')."
  }
}

variable "connector_token_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the connector token (plain string), named outside the latchkey/ prefix (the task role may write secrets there; the agent must never change its own token)."
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:", var.connector_token_secret_arn)) && !can(regex(":secret:latchkey/", var.connector_token_secret_arn))
    error_message = "connector_token_secret_arn: a Secrets Manager secret ARN whose name does not start with latchkey/ (e.g. latchkey-connector/<id>/token)."
  }
}

variable "trusted_keys" {
  description = "Ed25519 public keys accepted for command signatures, by key id."
  type        = map(string)
}

variable "desired_count" {
  description = "Replicas of the connector (several may be connected at once)."
  type        = number
  default     = 2
}

variable "cpu" {
  type    = number
  default = 256
}

variable "memory" {
  type    = number
  default = 512
}

variable "cpu_architecture" {
  description = "CPU of the Fargate task, X86_64 or ARM64; the image must hold that platform (the released image is multi-arch; for your own build: docker buildx build --platform linux/amd64 or linux/arm64)."
  type        = string
  default     = "X86_64"
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture: X86_64 or ARM64."
  }
}

variable "shutdown_grace_seconds" {
  description = "Graceful stop window of the agent (LATCHKEY_SHUTDOWN_GRACE)."
  type        = number
  default     = 30
}

variable "stop_timeout_seconds" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL (Fargate max 120). Must exceed shutdown_grace_seconds."
  type        = number
  default     = 45
  validation {
    condition     = var.stop_timeout_seconds <= 120
    error_message = "Fargate allows a stop timeout of at most 120 seconds."
  }
}

variable "tag_prefix" {
  description = "Prefix of the AWS tags the agent reads (LATCHKEY_TAG_PREFIX), also in every tag key of the task role's policy conditions (<prefix>-protected, <prefix>-connector-read, <prefix>-connector-access)."
  type        = string
  default     = "latchkey"
  validation {
    condition     = can(regex("^[A-Za-z0-9_.:/=+@-]{1,64}$", var.tag_prefix))
    error_message = "tag_prefix must be 1-64 characters allowed in AWS tag keys."
  }
}

variable "log_retention_days" {
  type    = number
  default = 30
}

variable "state_efs_file_system_id" {
  description = "Optional EFS file system for the state directory /var/lib/latchkey (kept across task replacements; one agent per directory: desired_count 1 or an access point per task). null = the task's ephemeral storage (survives container restarts only)."
  type        = string
  default     = null
}

variable "state_efs_access_point_id" {
  description = "Optional EFS access point (uid/gid 10001) for the state directory."
  type        = string
  default     = null
}

variable "https_proxy" {
  description = "Optional HTTP(S) proxy for every outbound connection: the control plane and all AWS API calls (LATCHKEY_HTTPS_PROXY). May carry credentials (never logged)."
  type        = string
  default     = null
  sensitive   = true
}

variable "no_proxy" {
  description = "Hosts reached directly, not through https_proxy (NO_PROXY), e.g. your VPC endpoints."
  type        = string
  default     = null
}

variable "secret_name_prefix" {
  description = "Name prefix of the service-account secrets the connector may rotate (SecretsRotate); CloudFormation's SecretNamePrefix."
  type        = string
  default     = "latchkey/"
  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,256}$", var.secret_name_prefix))
    error_message = "secret_name_prefix: letters, digits and /_+=.@- (no wildcard)."
  }
}

variable "extra_environment" {
  description = "Other LATCHKEY_* settings, name => value; none the module sets itself (a precondition refuses them)."
  type        = map(string)
  default     = {}
}

variable "tags" {
  type    = map(string)
  default = {}
}

variable "config_parameter_arn" {
  description = "Optional SSM parameter (String or SecureString, up to 8 KB as an advanced parameter) holding the agent's JSON config file, integrations included: written to /etc/latchkey/config.json by an init container and named by LATCHKEY_CONFIG_FILE."
  type        = string
  default     = null
  validation {
    condition     = var.config_parameter_arn == null || can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.config_parameter_arn))
    error_message = "config_parameter_arn: an SSM parameter ARN (arn:<partition>:ssm:<region>:<account>:parameter/<name>)."
  }
}

variable "ca_bundle_parameter_arn" {
  description = "Optional SSM parameter holding PEM CA certificates: written to /etc/latchkey/ca-bundle.pem and named by LATCHKEY_CA_BUNDLE_FILE."
  type        = string
  default     = null
  validation {
    condition     = var.ca_bundle_parameter_arn == null || can(regex("^arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:parameter/.+$", var.ca_bundle_parameter_arn))
    error_message = "ca_bundle_parameter_arn: an SSM parameter ARN (arn:<partition>:ssm:<region>:<account>:parameter/<name>)."
  }
}

variable "config_parameter_kms_key_arn" {
  description = "The customer managed KMS key of SecureString parameters above (kms:Decrypt through SSM only). null = String parameters or the AWS managed key aws/ssm."
  type        = string
  default     = null
  validation {
    condition     = var.config_parameter_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.config_parameter_kms_key_arn))
    error_message = "config_parameter_kms_key_arn: a KMS key ARN (arn:<partition>:kms:<region>:<account>:key/<id>)."
  }
}

variable "config_efs_file_system_id" {
  description = "Optional EFS file system mounted read-only at /etc/latchkey, for files too large for a parameter (instead of the parameters above); name the files with config_efs_config_path and config_efs_ca_bundle_path."
  type        = string
  default     = null
}

variable "config_efs_access_point_id" {
  description = "Optional EFS access point of config_efs_file_system_id (its root becomes /etc/latchkey)."
  type        = string
  default     = null
}

variable "config_efs_config_path" {
  description = "The JSON config file's path inside the EFS volume (e.g. config.json); sets LATCHKEY_CONFIG_FILE."
  type        = string
  default     = null
  validation {
    condition     = var.config_efs_config_path == null || can(regex("^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$", var.config_efs_config_path))
    error_message = "config_efs_config_path: a relative path (no leading '/', no '.' or '..' segment)."
  }
}

variable "config_efs_ca_bundle_path" {
  description = "The PEM CA bundle's path inside the EFS volume (e.g. ca-bundle.pem); sets LATCHKEY_CA_BUNDLE_FILE."
  type        = string
  default     = null
  validation {
    condition     = var.config_efs_ca_bundle_path == null || can(regex("^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$", var.config_efs_ca_bundle_path))
    error_message = "config_efs_ca_bundle_path: a relative path (no leading '/', no '.' or '..' segment)."
  }
}

variable "amp_workspace_arn" {
  description = "Optional Amazon Managed Service for Prometheus workspace: adds an ADOT collector sidecar that scrapes 127.0.0.1:8080/metrics and remote-writes there (SigV4), and aps:RemoteWrite on this workspace to the task role. null = no sidecar."
  type        = string
  default     = null
  validation {
    condition     = var.amp_workspace_arn == null || can(regex("^arn:aws[a-z-]*:aps:[a-z0-9-]+:[0-9]{12}:workspace/ws-[A-Za-z0-9-]+$", var.amp_workspace_arn))
    error_message = "amp_workspace_arn: an AMP workspace ARN (arn:<partition>:aps:<region>:<account>:workspace/ws-...)."
  }
}

variable "metrics_collector_image" {
  description = "Image of the ADOT collector sidecar (pin it by digest, or use your mirror)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.48.0"
}
