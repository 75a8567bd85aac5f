// Package asim writes azegress's log records for Microsoft Sentinel: each
// decision record (an allowed tunnel or request, a would_deny, every deny)
// becomes one JSON object per line in the Advanced Security Information
// Model (ASIM) Web Session schema, version 0.2.6
// (https://learn.microsoft.com/azure/sentinel/normalization-schema-web),
// whose columns are those of the ASimWebSessionLogs table, so that a data
// collection rule can send the file to that table with a filter and no
// parsing.
//
// The handler maps the records proxy already writes (their stable keys);
// it adds nothing to the proxy's hot path. Every other record (start,
// reload, errors) keeps azegress's default JSON form and has no
// EventSchema field, which is how a transform tells the two apart.
//
// It imports nothing of the module.
package asim
