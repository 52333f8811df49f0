// Package docs holds the operator and design guides; its test keeps the
// package map in design.md true to the code.
package docs
