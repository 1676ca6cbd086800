"""Versioned prompt templates: the store, one version, the sandbox and the lock."""

from .store import TemplateInfo as TemplateInfo
from .store import TemplateStore as TemplateStore
from .template import PromptTemplate as PromptTemplate

__all__ = ["PromptTemplate", "TemplateInfo", "TemplateStore"]
