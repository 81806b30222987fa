// biome-ignore-all lint/suspicious/noTemplateCurlyInString: republish topics are written ${thingName}, like AWS IoT substitution templates
/**
 * MQTT topic filter matching (MQTT 5 §4.7): '+' matches one level, '#' the rest (including the
 * parent level: 'a/#' matches 'a'). A filter starting with a wildcard does not match topics
 * starting with '$' [MQTT-4.7.2-1], so a rule on '#' does not see '$iotdr/...' system topics.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    const actual = t[i];
    if (actual === undefined) return false;
    if (level !== '+' && level !== actual) return false;
  }
  return f.length === t.length;
}

/** The republish topic with `${thingName}` filled in; undefined when it needs a thing name and has none. */
export function republishTopic(template: string, thingName: string | undefined): string | undefined {
  if (!template.includes('${thingName}')) return template;
  return thingName === undefined ? undefined : template.replaceAll('${thingName}', thingName);
}
