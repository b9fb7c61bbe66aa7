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
