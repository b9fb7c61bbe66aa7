variable "connector_role_arn" {
  description = "ARN of the connector's own role (ECS task role or EKS pod role); the only principal trusted"
  type        = string
  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.connector_role_arn))
    error_message = "connector_role_arn must be an IAM role ARN."
  }
}

variable "member_role_name" {
  description = "Role name in the member account: the organization config's memberRoleName; must match the connector's allowed role pattern (default latchkey-*)"
  type        = string
  default     = "latchkey-member"
}

variable "external_id" {
  description = "External id the connector sends (organization.externalId); empty for none"
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags of the role"
  type        = map(string)
  default     = {}
}

variable "tag_prefix" {
  description = "The connector's tag prefix (LATCHKEY_TAG_PREFIX), in every tag key of the role's conditions and its own protection tag (<prefix>-protected, <prefix>-connector-read, <prefix>-connector-access)."
  type        = string
  default     = "latchkey"
  validation {
    condition     = can(regex("^[A-Za-z0-9_.:/=+@-]{1,64}$", var.tag_prefix))
    error_message = "tag_prefix must be 1-64 characters allowed in AWS tag keys."
  }
}

variable "secret_name_prefix" {
  description = "Name prefix of the service-account secrets the connector may rotate in this account; it reads any secret tagged <tag_prefix>-connector-read=true."
  type        = string
  default     = "latchkey/"
  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,256}$", var.secret_name_prefix))
    error_message = "secret_name_prefix: letters, digits and /_+=.@- (no wildcard)."
  }
}
