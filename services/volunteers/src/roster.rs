//! 志愿者花名册 — volunteer rosters as centres keep them: an Excel workbook (.xlsx, first sheet)
//! or a CSV sheet, a header row naming the columns, one volunteer per row.
//!
//! Reading a sheet is pure: bytes in, rows (or the sheet's one error) out. Checking the rows
//! against the directory happens in the service; every refused row is reported at once.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};

use diandan_workflows::Category;

/// Largest sheet accepted (the gateway refuses larger bodies before they reach here).
pub const MAX_SHEET_BYTES: usize = 5 * 1024 * 1024;
/// Most data rows in one import.
pub const MAX_ROWS: usize = 5_000;
/// Most row errors reported (the rest are counted).
pub const MAX_REPORTED_ERRORS: usize = 500;

/// The columns, by header. `编号` and `姓名` and `服务队` are required.
pub const COLUMNS: [(&str, &[&str], bool); 5] = [
    ("id", &["编号", "志愿者编号", "id"], true),
    ("name", &["姓名", "name"], true),
    ("phone", &["手机号", "手机", "联系电话", "phone"], false),
    (
        "team_ids",
        &["服务队", "队伍", "所属队伍", "team_ids"],
        true,
    ),
    ("skills", &["技能", "服务类别", "skills"], false),
];

/// The header (Chinese) shown in errors for a column key.
pub fn header_of(key: &str) -> &'static str {
    COLUMNS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, names, _)| names[0])
        .unwrap_or("")
}

/// One data row, as written, with its number in the sheet (the header is row 1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterRow {
    pub row: u32,
    pub id: String,
    pub name: String,
    pub phone: String,
    pub team_ids: Vec<String>,
    pub skills: Vec<String>,
}

/// A problem with the sheet as a whole (not one row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SheetError(pub String);

/// Reads the rows of a sheet in `format` (`xlsx` or `csv`).
pub fn read(format: &str, bytes: &[u8]) -> Result<Vec<RosterRow>, SheetError> {
    if bytes.is_empty() {
        return Err(SheetError("文件为空".into()));
    }
    if bytes.len() > MAX_SHEET_BYTES {
        return Err(SheetError(format!(
            "文件过大（最多 {} MB）",
            MAX_SHEET_BYTES / 1024 / 1024
        )));
    }
    let cells = match format {
        "xlsx" => xlsx_cells(bytes)?,
        "csv" => csv_cells(bytes)?,
        other => {
            return Err(SheetError(format!(
                "不支持的文件格式「{other}」，请上传 .xlsx 或 .csv"
            )))
        }
    };
    rows(cells)
}

fn xlsx_cells(bytes: &[u8]) -> Result<Vec<Vec<String>>, SheetError> {
    let mut workbook = Xlsx::new(Cursor::new(bytes))
        .map_err(|_| SheetError("无法读取 Excel 文件，请确认是 .xlsx 格式".into()))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| SheetError("工作簿中没有工作表".into()))?
        .map_err(|_| SheetError("无法读取第一个工作表".into()))?;
    // Rows are numbered from the sheet's first row, wherever the used range starts.
    let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
    let mut cells = vec![Vec::new(); first_row];
    for row in range.rows() {
        if cells.len() > MAX_ROWS + 1 {
            return Err(SheetError(format!("最多导入 {MAX_ROWS} 行")));
        }
        cells.push(row.iter().map(cell_text).collect());
    }
    Ok(cells)
}

/// A cell as text: numbers typed into Excel (a phone number, an id) lose their `.0`.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Int(i) => i.to_string(),
        other => other.to_string().trim().to_owned(),
    }
}

fn csv_cells(bytes: &[u8]) -> Result<Vec<Vec<String>>, SheetError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| SheetError("CSV 须为 UTF-8 编码（在 Excel 中另存为「CSV UTF-8」）".into()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut cells = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            SheetError(format!("CSV 第 {line} 行格式有误"))
        })?;
        if cells.len() > MAX_ROWS + 1 {
            return Err(SheetError(format!("最多导入 {MAX_ROWS} 行")));
        }
        cells.push(record.iter().map(|c| c.trim().to_owned()).collect());
    }
    Ok(cells)
}

/// Splits a list cell on ；;，, and whitespace.
fn list(cell: &str) -> Vec<String> {
    cell.split(['；', ';', '，', ',', '、', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn rows(cells: Vec<Vec<String>>) -> Result<Vec<RosterRow>, SheetError> {
    let mut lines = cells.into_iter().enumerate();
    // The header is the first non-empty row.
    let (header_index, header) = lines
        .by_ref()
        .find(|(_, row)| row.iter().any(|c| !c.is_empty()))
        .ok_or_else(|| SheetError("没有表头行（编号、姓名、手机号、服务队、技能）".into()))?;
    let mut index = [None; COLUMNS.len()];
    for (position, cell) in header.iter().enumerate() {
        let cell = cell.trim().trim_start_matches('\u{feff}');
        if let Some(column) = COLUMNS
            .iter()
            .position(|(_, names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(cell)))
        {
            index[column].get_or_insert(position);
        }
    }
    for (column, (_, names, required)) in COLUMNS.iter().enumerate() {
        if *required && index[column].is_none() {
            return Err(SheetError(format!(
                "第 {} 行（表头）缺少「{}」列",
                header_index + 1,
                names[0]
            )));
        }
    }
    let get = |row: &[String], column: usize| -> String {
        index[column]
            .and_then(|i| row.get(i))
            .cloned()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for (i, row) in lines {
        if row.iter().all(|c| c.is_empty()) {
            continue;
        }
        out.push(RosterRow {
            row: (i + 1) as u32,
            id: get(&row, 0),
            name: get(&row, 1),
            phone: get(&row, 2),
            team_ids: list(&get(&row, 3)),
            skills: list(&get(&row, 4)),
        });
        if out.len() > MAX_ROWS {
            return Err(SheetError(format!("最多导入 {MAX_ROWS} 行")));
        }
    }
    if out.is_empty() {
        return Err(SheetError("表头下没有数据行".into()));
    }
    Ok(out)
}

/// A skill cell: a category code (`repair`) or its Chinese name (便民维修).
pub fn parse_skill(text: &str) -> Option<Category> {
    Category::parse(text).or_else(|| Category::ALL.iter().copied().find(|c| c.name_zh() == text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_with_bom_and_chinese_headers() {
        let sheet = "\u{feff}编号,姓名,手机号,服务队,技能\nv-1,张三,13800000001,team-a；team-b,便民维修;repair\n,,,,\nv-2,李四,,team-a,\n";
        let rows = read("csv", sheet.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[0].team_ids, vec!["team-a", "team-b"]);
        assert_eq!(rows[0].skills, vec!["便民维修", "repair"]);
        assert_eq!(rows[1].row, 4);
        assert_eq!(parse_skill("便民维修"), Some(Category::Repair));
    }

    #[test]
    fn refuses_sheets_it_cannot_read() {
        assert!(read("csv", b"").is_err());
        assert!(read("csv", &[0xff, 0xfe, 0x00]).is_err());
        assert!(read("csv", "姓名,手机号\n张三,1\n".as_bytes())
            .unwrap_err()
            .0
            .contains("编号"));
        assert!(read("xlsx", b"not a zip").is_err());
        assert!(read("pdf", b"x").is_err());
        let too_many = format!("编号,姓名,服务队\n{}", "v,x,t\n".repeat(MAX_ROWS + 1));
        assert!(read("csv", too_many.as_bytes()).is_err());
    }
}
