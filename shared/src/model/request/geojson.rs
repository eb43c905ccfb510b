//! The map order's area: one GeoJSON Polygon in ETRS89 / UTM (kode-api.md §5.1).
//! Files exported from GIS tools wrap it in a Feature or FeatureCollection and
//! may name their CRS; both are understood.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::RequestError;

/// `spatialReference`: the EPSG code of the polygon's coordinates, sent as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpatialReference {
    /// EPSG:25833, ETRS89 / UTM zone 33N (most of Norway; the default).
    #[default]
    Utm33,
    /// EPSG:25832, ETRS89 / UTM zone 32N (western Norway).
    Utm32,
}

impl SpatialReference {
    /// Accepts `25833`, `EPSG:25833` and `urn:ogc:def:crs:EPSG::25833`.
    pub fn parse(input: &str) -> Result<Self, RequestError> {
        let code = input.trim().rsplit(':').next().unwrap_or_default();
        match code {
            "25833" => Ok(Self::Utm33),
            "25832" => Ok(Self::Utm32),
            _ => Err(RequestError::SpatialReference(input.to_owned())),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Utm33 => "25833",
            Self::Utm32 => "25832",
        }
    }
}

impl std::str::FromStr for SpatialReference {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SpatialReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SpatialReference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A validated GeoJSON Polygon: an exterior ring and optional holes, each
/// closed (first position == last) with at least four finite positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    rings: Vec<Vec<Vec<f64>>>,
}

impl Polygon {
    pub fn rings(&self) -> &[Vec<Vec<f64>>] {
        &self.rings
    }

    fn from_coordinates(coordinates: &Value) -> Result<Self, RequestError> {
        let err = |msg: String| RequestError::GeoJson(msg);
        let rings = coordinates
            .as_array()
            .ok_or_else(|| err("Polygon \"coordinates\" must be an array of rings".into()))?;
        if rings.is_empty() {
            return Err(err("Polygon has no rings".into()));
        }
        let rings = rings
            .iter()
            .enumerate()
            .map(|(i, ring)| parse_ring(i + 1, ring))
            .collect::<Result<Vec<_>, _>>()?;
        if shoelace_area(&rings[0]) == 0.0 {
            return Err(err("the exterior ring encloses no area".into()));
        }
        let all_degrees = rings
            .iter()
            .flatten()
            .all(|p| p[0].abs() <= 180.0 && p[1].abs() <= 90.0);
        if all_degrees {
            return Err(err(
                "coordinates look like longitude/latitude degrees; KODE wants metres in \
                 ETRS89 / UTM 33N (25833) or 32N (25832): reproject the file"
                    .into(),
            ));
        }
        Ok(Self { rings })
    }
}

impl Serialize for Polygon {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Polygon", 2)?;
        s.serialize_field("type", "Polygon")?;
        s.serialize_field("coordinates", &self.rings)?;
        s.end()
    }
}

fn parse_ring(index: usize, ring: &Value) -> Result<Vec<Vec<f64>>, RequestError> {
    let err = |msg: String| RequestError::GeoJson(format!("ring {index}: {msg}"));
    let positions = ring
        .as_array()
        .ok_or_else(|| err("must be an array of positions".into()))?;
    let positions = positions
        .iter()
        .enumerate()
        .map(|(j, p)| parse_position(p).map_err(|m| err(format!("position {}: {m}", j + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    if positions.len() < 4 {
        return Err(err(format!(
            "has {} position(s); a closed ring needs at least 4",
            positions.len()
        )));
    }
    if positions.first() != positions.last() {
        return Err(err(
            "is not closed: the last position must equal the first".into()
        ));
    }
    Ok(positions)
}

fn parse_position(position: &Value) -> Result<Vec<f64>, String> {
    let numbers = position
        .as_array()
        .ok_or("must be an array [x, y]")?
        .iter()
        .map(|n| n.as_f64().filter(|f| f.is_finite()))
        .collect::<Option<Vec<f64>>>()
        .ok_or("must hold only finite numbers")?;
    if !(2..=3).contains(&numbers.len()) {
        return Err(format!("has {} numbers; expected [x, y]", numbers.len()));
    }
    Ok(numbers)
}

fn shoelace_area(ring: &[Vec<f64>]) -> f64 {
    ring.windows(2)
        .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
        .sum::<f64>()
        / 2.0
}

/// The content of a GeoJSON file: its one Polygon and the CRS the file names, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoJsonInput {
    pub polygon: Polygon,
    pub crs: Option<SpatialReference>,
}

impl GeoJsonInput {
    pub fn parse(text: &str) -> Result<Self, RequestError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| RequestError::GeoJson(format!("not valid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Accepts a Polygon geometry, a Feature whose geometry is a Polygon, or a
    /// FeatureCollection holding exactly one such Feature.
    pub fn from_value(value: &Value) -> Result<Self, RequestError> {
        let crs = named_crs(value)?;
        let polygon = Polygon::from_coordinates(polygon_coordinates(value)?)?;
        Ok(Self { polygon, crs })
    }

    /// The file's CRS and the one asked for must agree; without either, 25833.
    pub fn spatial_reference(
        &self,
        requested: Option<SpatialReference>,
    ) -> Result<SpatialReference, RequestError> {
        match (requested, self.crs) {
            (Some(r), Some(c)) if r != c => Err(RequestError::GeoJson(format!(
                "the file says its coordinates are in EPSG:{c}, but {r} was asked for"
            ))),
            (r, c) => Ok(r.or(c).unwrap_or_default()),
        }
    }
}

fn geojson_type(value: &Value) -> Result<&str, RequestError> {
    value
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| RequestError::GeoJson("not a GeoJSON object (no \"type\")".into()))
}

fn polygon_coordinates(value: &Value) -> Result<&Value, RequestError> {
    let err = |msg: String| RequestError::GeoJson(msg);
    match geojson_type(value)? {
        "Polygon" => value
            .get("coordinates")
            .ok_or_else(|| err("Polygon has no \"coordinates\"".into())),
        "Feature" => match value.get("geometry") {
            Some(g) if !g.is_null() => polygon_coordinates(g)
                .map_err(|e| err(format!("in the Feature: {}", strip_prefix(&e)))),
            _ => Err(err("the Feature has no geometry".into())),
        },
        "FeatureCollection" => {
            let features = value
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| err("the FeatureCollection has no \"features\" array".into()))?;
            match features.as_slice() {
                [one] => polygon_coordinates(one),
                other => Err(err(format!(
                    "the FeatureCollection holds {} features; exactly one Polygon is needed",
                    other.len()
                ))),
            }
        }
        other => Err(err(format!(
            "a {other} is not an area KODE can take; a single Polygon is needed"
        ))),
    }
}

fn strip_prefix(e: &RequestError) -> String {
    let text = e.to_string();
    text.strip_prefix("GeoJSON: ").unwrap_or(&text).to_owned()
}

/// The pre-2016 GeoJSON `crs` member (still written by QGIS and ogr2ogr):
/// `{"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25833"}}`.
fn named_crs(value: &Value) -> Result<Option<SpatialReference>, RequestError> {
    let Some(name) = value
        .get("crs")
        .and_then(|c| c.pointer("/properties/name"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    SpatialReference::parse(name).map(Some).map_err(|_| {
        RequestError::GeoJson(format!(
            "the file's coordinates are in {name}; KODE takes EPSG:25833 or EPSG:25832 only"
        ))
    })
}
